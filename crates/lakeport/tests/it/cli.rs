//! The client commands (`lakeport schema|dataset|ingest|batch|download`) run as a real
//! process against a real `lakeport serve`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{Value, json};

use crate::{ORG, Server};

const TOKEN: &str = "cli-test-token";

/// The finished `lakeport` client process.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }
}

/// A running server, a scratch folder and an isolated home for the client.
struct Env {
    server: Server,
    _data: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Env {
    fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start(data.path(), &["--token", TOKEN]);
        Self {
            server,
            _data: data,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.work.path().join(relative)
    }

    /// Runs `lakeport <args>` with the connection in LAKEPORT_* variables, no profile and
    /// no `./lakeport-data` in reach.
    fn lakeport(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lakeport"));
        for (name, _) in std::env::vars() {
            if name.starts_with("LAKEPORT") || name == "XDG_CONFIG_HOME" {
                command.env_remove(name);
            }
        }
        let output = command
            .args(args)
            .current_dir(self.work.path())
            .env("HOME", self.work.path())
            .env("LAKEPORT_URL", format!("http://{}", self.server.address))
            .env("LAKEPORT_TOKEN", TOKEN)
            .env("LAKEPORT_ORG", ORG)
            .output()
            .expect("lakeport runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Creates the loyalty-events schema and a dataset on it through the CLI; returns the
    /// dataset id and the tenant namespace (`_<tenant id>`).
    fn loyalty_dataset(&self, name: &str) -> (String, String) {
        let group = self.path(&format!("{name}-fields.json"));
        std::fs::write(
            &group,
            json!({
                "title": format!("{name} loyalty fields"),
                "definitions": {"loyalty": {"properties": {"_{TENANT_ID}": {
                    "type": "object", "required": ["memberId"],
                    "properties": {
                        "memberId": {"type": "string", "pattern": "^M-[0-9]{3}$"},
                        "points": {"type": "integer", "minimum": 0, "meta:xdmType": "int"}}}}}},
                "allOf": [{"$ref": "#/definitions/loyalty"}]
            })
            .to_string(),
        )
        .unwrap();
        let created = self
            .lakeport(&[
                "schema",
                "create",
                "--title",
                &format!("{name} events"),
                "--class",
                "experienceevent",
                "--field-group",
                group.to_str().unwrap(),
            ])
            .ok();
        let schema_id = created.stdout.trim().to_owned();
        assert!(
            schema_id.starts_with("https://ns.adobe.com/"),
            "{created:#?}"
        );
        let full = self.lakeport(&["schema", "show", &schema_id]).ok().json();
        let namespace = full["properties"]
            .as_object()
            .unwrap()
            .keys()
            .find(|key| {
                key.starts_with('_') && full["properties"][*key]["properties"]["points"].is_object()
            })
            .unwrap_or_else(|| panic!("the full schema resolves the field group: {full}"))
            .clone();
        let dataset = self
            .lakeport(&["dataset", "create", "--name", name, "--schema", &schema_id])
            .ok()
            .stdout
            .trim()
            .to_owned();
        assert_eq!(dataset.len(), 24, "{dataset}");
        (dataset, namespace)
    }
}

fn event(namespace: &str, index: usize, member: &str, points: i64) -> Value {
    json!({"_id": format!("e-{index}"), "timestamp": "2024-03-01T10:00:00Z",
           namespace: {"memberId": member, "points": points}})
}

fn write_lines(path: &Path, rows: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn write_parquet(path: &Path, namespace: &str, ids: &[&str], members: &[&str], points: &[i32]) {
    let tenant_fields = Fields::from(vec![
        Field::new("memberId", DataType::Utf8, false),
        Field::new("points", DataType::Int32, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Utf8, false),
        Field::new(namespace, DataType::Struct(tenant_fields.clone()), true),
    ]));
    let tenant = StructArray::new(
        tenant_fields,
        vec![
            Arc::new(StringArray::from(members.to_vec())) as ArrayRef,
            Arc::new(Int32Array::from(points.to_vec())) as ArrayRef,
        ],
        None,
    );
    let timestamps = vec!["2024-03-02T08:00:00Z"; ids.len()];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(StringArray::from(timestamps)),
            Arc::new(tenant),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn batch_by_format<'a>(report: &'a Value, format: &str) -> &'a Value {
    report["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|batch| batch["format"] == format)
        .unwrap_or_else(|| panic!("a {format} batch in {report}"))
}

#[test]
fn a_folder_of_json_lines_csv_and_parquet_is_ingested_through_the_cli() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("mixed");

    let listed = env.lakeport(&["schema", "list", "--json"]).ok().json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|schema| schema["title"] == "mixed events"),
        "{listed}"
    );

    let folder = env.path("drop");
    write_lines(
        &folder.join("day=2024-03-01/events.jsonl"),
        &[
            event(&ns, 1, "M-001", 10),
            event(&ns, 2, "M-002", 20),
            event(&ns, 3, "M-003", 30),
        ],
    );
    std::fs::write(
        folder.join("members.csv"),
        format!(
            "_id,timestamp,{ns}.memberId,{ns}.points\nc-1,2024-03-01T11:00:00Z,M-101,5\nc-2,2024-03-01T12:00:00Z,M-102,6\n"
        ),
    )
    .unwrap();
    write_parquet(
        &folder.join("events.parquet"),
        &ns,
        &["p-1", "p-2"],
        &["M-201", "M-202"],
        &[1, 2],
    );
    std::fs::write(folder.join("NOTES.txt"), "not data").unwrap();

    let run = env
        .lakeport(&[
            "ingest",
            folder.to_str().unwrap(),
            "--dataset",
            &dataset,
            "--wait",
            "--timeout",
            "120",
            "--json",
        ])
        .ok();
    let report = run.json();
    assert_eq!(report["batches"].as_array().unwrap().len(), 3, "{report}");
    for (format, rows, path) in [
        ("json", 3, "day=2024-03-01/events.jsonl"),
        ("csv", 2, "members.csv"),
        ("parquet", 2, "events.parquet"),
    ] {
        let batch = batch_by_format(&report, format);
        assert_eq!(batch["status"], "success", "{batch}");
        assert_eq!(batch["dataset"], dataset.as_str());
        assert_eq!(batch["rowsRead"], rows, "{batch}");
        assert_eq!(batch["rowsIngested"], rows, "{batch}");
        assert_eq!(batch["rowsRejected"], 0, "{batch}");
        assert_eq!(batch["files"][0]["path"], path, "{batch}");
        assert_eq!(batch["files"][0]["chunked"], false);
    }

    // The batches are listed for the dataset, as JSON and as a table.
    let listed = env
        .lakeport(&["batch", "list", "--dataset", &dataset, "--json"])
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let table = env.lakeport(&["batch", "list", "--dataset", &dataset]).ok();
    assert!(table.stdout.starts_with("ID"), "{table:#?}");
    assert_eq!(table.stdout.matches("success").count(), 3, "{table:#?}");
    let shown = env.lakeport(&["dataset", "show", &dataset]).ok();
    assert!(shown.stdout.contains("mixed"), "{shown:#?}");
    let datasets = env.lakeport(&["dataset", "list", "--json"]).ok().json();
    assert_eq!(datasets[0]["id"], dataset.as_str());

    // Reverting a batch is visible in `batch show`.
    let json_batch = batch_by_format(&report, "json")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reverted = env.lakeport(&["batch", "revert", &json_batch]).ok();
    assert!(reverted.stdout.contains("inactive"), "{reverted:#?}");
    let shown = env
        .lakeport(&["batch", "show", &json_batch, "--json"])
        .ok()
        .json();
    assert_eq!(shown["status"], "inactive");
}

#[test]
fn a_partial_batch_lists_its_rejected_rows_and_a_failed_batch_exits_with_3() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("partial");
    let mut rows: Vec<Value> = (0..8)
        .map(|i| event(&ns, i, &format!("M-{i:03}"), 10))
        .collect();
    rows.push(event(&ns, 8, "M-008", -5));
    rows.push(event(&ns, 9, "member nine", 1));
    write_lines(&env.path("rows.jsonl"), &rows);

    // Human summary: counts, errors and the rejected rows with their reasons.
    let run = env
        .lakeport(&[
            "ingest",
            "rows.jsonl",
            "--dataset",
            &dataset,
            "--partial",
            "25",
            "--wait",
        ])
        .ok();
    let text = &run.stdout;
    assert!(text.contains("success"), "{run:#?}");
    assert!(text.contains("rows read  10"), "{run:#?}");
    assert!(text.contains("ingested   8"), "{run:#?}");
    assert!(text.contains("rejected   2"), "{run:#?}");
    assert!(text.contains("INGEST-1212-400"), "{run:#?}");
    assert!(text.contains("first 2 rejected rows"), "{run:#?}");
    assert!(
        text.contains("\"e-8\"") && text.contains("\"e-9\""),
        "{run:#?}"
    );
    assert!(text.contains("points"), "{run:#?}");

    // The same as JSON.
    let run = env
        .lakeport(&[
            "ingest",
            "rows.jsonl",
            "--dataset",
            &dataset,
            "--partial",
            "25",
            "--wait",
            "--json",
        ])
        .ok();
    let batch = &run.json()["batches"][0];
    assert_eq!(
        (
            &batch["rowsRead"],
            &batch["rowsIngested"],
            &batch["rowsRejected"]
        ),
        (&json!(10), &json!(8), &json!(2)),
        "{batch}"
    );
    let rejected = batch["rejectedRows"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{batch}");
    assert_eq!(rejected[0]["_filename"], "rows.jsonl");
    let id = batch["id"].as_str().unwrap();
    let errors = env.lakeport(&["batch", "errors", id, "--json"]).ok().json();
    assert_eq!(
        errors["rejectedRows"].as_array().unwrap().len(),
        2,
        "{errors}"
    );

    // Without a threshold the batch fails: exit code 3 and a one-line reason.
    let run = env.lakeport(&["ingest", "rows.jsonl", "--dataset", &dataset, "--wait"]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    let stderr_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(stderr_lines.len(), 1, "{run:#?}");
    assert!(stderr_lines[0].contains("failed"), "{run:#?}");
    assert!(run.stdout.contains("failed"), "{run:#?}");
}

#[test]
fn a_file_over_the_put_limit_goes_up_in_chunks() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("chunked");
    let rows: Vec<Value> = (0..600)
        .map(|i| event(&ns, i, &format!("M-{:03}", i % 1000), 7))
        .collect();
    let file = env.path("big/events.jsonl");
    write_lines(&file, &rows);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 40_000, "{size}");

    let run = env
        .lakeport(&[
            "ingest",
            file.to_str().unwrap(),
            "--dataset",
            &dataset,
            "--put-limit",
            "16k",
            "--chunk-size",
            "10k",
            "--wait",
            "--json",
        ])
        .ok();
    let batch = &run.json()["batches"][0];
    assert_eq!(batch["status"], "success", "{batch}");
    assert_eq!(batch["rowsIngested"], 600, "{batch}");
    let uploaded = &batch["files"][0];
    assert_eq!(uploaded["chunked"], true, "{batch}");
    assert_eq!(uploaded["chunks"], size.div_ceil(10 * 1024), "{batch}");
    assert_eq!(uploaded["bytes"], size);
}

#[test]
fn wrong_credentials_and_missing_settings_fail_with_one_clear_line() {
    let env = Env::start();

    let run = env.lakeport(&["dataset", "list", "--token", "not-the-token"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("error: the server refused the credentials"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("401"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");

    // No organization anywhere: a usage error.
    let run = env.lakeport(&["dataset", "list", "--org", ""]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("no organization"), "{run:#?}");

    // A profile file fills what flags and variables leave open; flags still win.
    let profile = env.path("profile.toml");
    std::fs::write(&profile, format!("org = \"{ORG}\"\ntoken = \"wrong\"\n")).unwrap();
    let run = env.lakeport(&[
        "dataset",
        "list",
        "--org",
        "",
        "--profile",
        profile.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.json(), json!([]));

    // Unknown files and datasets are errors too.
    let run = env.lakeport(&["ingest", "missing.jsonl", "--dataset", "nope"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    std::fs::write(env.path("one.jsonl"), "{}\n").unwrap();
    let run = env.lakeport(&[
        "ingest",
        "one.jsonl",
        "--dataset",
        "0123456789abcdef01234567",
    ]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("0123456789abcdef01234567"), "{run:#?}");
}

#[test]
fn download_writes_the_files_of_a_batch() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("download");
    write_lines(
        &env.path("rows.jsonl"),
        &[event(&ns, 1, "M-001", 1), event(&ns, 2, "M-002", 2)],
    );
    let report = env
        .lakeport(&[
            "ingest",
            "rows.jsonl",
            "--dataset",
            &dataset,
            "--wait",
            "--json",
        ])
        .ok()
        .json();
    let batch = report["batches"][0]["id"].as_str().unwrap().to_owned();

    let run = env
        .lakeport(&["download", &batch, "--to", "out", "--json"])
        .ok();
    let files = run.json()["files"].as_array().unwrap().clone();
    assert!(!files.is_empty(), "{run:#?}");
    for file in &files {
        let path = PathBuf::from(file["path"].as_str().unwrap());
        let path = if path.is_absolute() {
            path
        } else {
            env.work.path().join(path)
        };
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, file["bytes"].as_u64().unwrap());
        if path.extension().is_some_and(|ext| ext == "parquet") {
            assert_eq!(&bytes[..4], b"PAR1", "{}", path.display());
        }
    }
}

#[test]
fn stream_sends_a_json_lines_file_to_an_inlet_and_summarizes() {
    let env = Env::start();
    let (dataset, namespace) = env.loyalty_dataset("streamed");
    let mut conn = env.server.conn();
    let flow = env
        .lakeport(&["flow", "create", "--dataset", &dataset, "--json"])
        .ok()
        .json();
    let inlet = flow["inletId"].as_str().unwrap().to_owned();
    assert_eq!(inlet.len(), 64, "{flow}");
    assert_eq!(
        flow["inletUrl"],
        format!("http://{}/collection/{inlet}", env.server.address)
    );
    let text = env
        .lakeport(&["flow", "create", "--dataset", &dataset])
        .ok();
    assert!(
        text.stdout
            .trim()
            .starts_with(&format!("http://{}/collection/", env.server.address)),
        "{text:#?}"
    );
    let message = |n: usize, org: &str| {
        json!({"header": {"imsOrgId": org}, "body": {"xdmEntity": {
            "_id": format!("s{n}"), "timestamp": "2024-05-01T12:00:00Z",
            namespace.clone(): {"memberId": format!("M-{:03}", n % 1000), "points": n}}}})
    };
    let good: Vec<Value> = (0..1200).map(|n| message(n, ORG)).collect();
    write_lines(&env.path("good.jsonl"), &good);
    let run = env
        .lakeport(&[
            "stream",
            "--inlet",
            &inlet,
            "--batch-size",
            "500",
            "--json",
            "good.jsonl",
        ])
        .ok();
    assert_eq!(
        (
            run.json()["accepted"].as_u64(),
            run.json()["rejected"].as_u64()
        ),
        (Some(1200), Some(0)),
        "{run:#?}"
    );

    let mixed = vec![
        message(5000, ORG),
        message(5001, "B0B0B0B0B0B0B0B0B0B0B0B0@AdobeOrg"),
    ];
    write_lines(&env.path("mixed.jsonl"), &mixed);
    std::fs::write(
        env.path("mixed.jsonl"),
        format!(
            "{}not json\n",
            std::fs::read_to_string(env.path("mixed.jsonl")).unwrap()
        ),
    )
    .unwrap();
    let run = env.lakeport(&["stream", "--inlet", &inlet, "mixed.jsonl"]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stdout.starts_with("1 accepted, 2 rejected"), "{run:#?}");
    assert!(run.stdout.contains("line 2: inletId: ["), "{run:#?}");
    assert!(run.stdout.contains("line 3: not JSON"), "{run:#?}");

    // Every accepted message lands (the server seals segments every 5 s).
    let landed = |conn: &mut crate::http::Conn| -> u64 {
        let reply = crate::send(
            conn,
            TOKEN,
            "GET",
            &format!("/data/foundation/catalog/batches?dataSet={dataset}&status=success"),
            None,
        );
        reply
            .json()
            .as_object()
            .unwrap()
            .values()
            .map(|b| b["recordCount"].as_u64().unwrap_or(0))
            .sum()
    };
    crate::crash::wait_until(std::time::Duration::from_secs(60), || {
        landed(&mut conn) == 1201
    });
    assert_eq!(landed(&mut conn), 1201);
}

#[test]
fn dataset_read_prints_the_rows_now_and_as_of_an_earlier_batch_or_version() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("timetravel");
    let mut batches = Vec::new();
    for (index, member) in [(1, "M-001"), (2, "M-002")] {
        let file = format!("rows-{index}.jsonl");
        write_lines(&env.path(&file), &[event(&ns, index, member, 10)]);
        let report = env
            .lakeport(&["ingest", &file, "--dataset", &dataset, "--wait", "--json"])
            .ok()
            .json();
        batches.push(report["batches"][0]["id"].as_str().unwrap().to_owned());
    }
    let members = |run: &Run| -> Vec<String> {
        let mut members: Vec<String> = run
            .stdout
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).unwrap();
                row[&ns]["memberId"].as_str().unwrap().to_owned()
            })
            .collect();
        members.sort();
        members
    };
    let now = env.lakeport(&["dataset", "read", &dataset]).ok();
    assert_eq!(members(&now), ["M-001", "M-002"], "{now:#?}");
    let first = env
        .lakeport(&["dataset", "read", &dataset, "--as-of-batch", &batches[0]])
        .ok();
    assert_eq!(members(&first), ["M-001"], "{first:#?}");
    // Version 0 is the empty table made with the dataset; 1 holds the first batch.
    let by_version = env
        .lakeport(&["dataset", "read", &dataset, "--version", "1", "--json"])
        .ok()
        .json();
    assert_eq!(by_version["version"], 1, "{by_version}");
    assert_eq!(
        by_version["data"].as_array().unwrap().len(),
        1,
        "{by_version}"
    );
    // A version past the latest is the server's 404, said in one line.
    let missing = env.lakeport(&["dataset", "read", &dataset, "--version", "99"]);
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("99"), "{missing:#?}");
}

/// `lakeport dataset optimize` queues the compaction on the running server, follows it and
/// prints what it did; the rows read the same afterwards. `vacuum` runs the same way (with
/// the default retention of 7 days nothing is old enough to delete). An unknown dataset is
/// the server's 404 in one line.
#[test]
fn dataset_optimize_and_vacuum_follow_their_jobs_and_print_what_they_did() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("compaction");
    for (index, member) in [(1, "M-001"), (2, "M-002"), (3, "M-003")] {
        let file = format!("rows-{index}.jsonl");
        write_lines(&env.path(&file), &[event(&ns, index, member, 10)]);
        env.lakeport(&["ingest", &file, "--dataset", &dataset, "--wait"])
            .ok();
    }
    let before = env.lakeport(&["dataset", "read", &dataset]).ok().stdout;
    let optimized = env.lakeport(&["dataset", "optimize", &dataset]).ok();
    assert!(optimized.stderr.contains(": done"), "{optimized:#?}");
    assert!(
        optimized.stdout.contains("filesRemoved: 3"),
        "{optimized:#?}"
    );
    assert!(optimized.stdout.contains("filesAdded: 1"), "{optimized:#?}");
    let mut after: Vec<&str> = Vec::new();
    let after_text = env.lakeport(&["dataset", "read", &dataset]).ok().stdout;
    after.extend(after_text.lines());
    let mut expected: Vec<&str> = before.lines().collect();
    after.sort_unstable();
    expected.sort_unstable();
    assert_eq!(after, expected);

    let vacuumed = env
        .lakeport(&["dataset", "vacuum", &dataset, "--json"])
        .ok()
        .json();
    assert_eq!(vacuumed["status"], "done", "{vacuumed}");
    assert_eq!(vacuumed["result"]["filesDeleted"], 0, "{vacuumed}");

    let unknown = env.lakeport(&["dataset", "optimize", "5f0000000000000000000000"]);
    assert_eq!(unknown.code, Some(1), "{unknown:#?}");
    assert!(unknown.stderr.contains("does not exist"), "{unknown:#?}");
}

/// `lakeport dataset read --output` writes every row of the table as of a point: as one
/// JSON Lines file, or as the table's Parquet files in a directory.
#[test]
fn dataset_read_output_writes_every_row_as_json_lines_or_parquet_files() {
    let env = Env::start();
    let (dataset, ns) = env.loyalty_dataset("export");
    for (index, member) in [(1, "M-001"), (2, "M-002")] {
        let file = format!("rows-{index}.jsonl");
        write_lines(&env.path(&file), &[event(&ns, index, member, 10)]);
        env.lakeport(&["ingest", &file, "--dataset", &dataset, "--wait"])
            .ok();
    }
    let run = env
        .lakeport(&["dataset", "read", &dataset, "--output", "out/all.jsonl"])
        .ok();
    assert!(run.stdout.contains("wrote 2 rows"), "{run:#?}");
    let text = std::fs::read_to_string(env.path("out/all.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(rows.iter().all(|row| row["_id"].is_string()), "{text}");
    assert_eq!(rows.len(), 2, "{text}");
    // No scratch left next to the output.
    let left: Vec<_> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    let summary = env
        .lakeport(&[
            "dataset",
            "read",
            &dataset,
            "--version",
            "1",
            "--output",
            "v1",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (&summary["version"], &summary["files"]),
        (&json!(1), &json!(1)),
        "{summary}"
    );
    let mut found = Vec::new();
    let mut stack = vec![env.path("v1")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let file = std::fs::File::open(&found[0]).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(rows, 1);
}
