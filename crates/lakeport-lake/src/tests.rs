use arrow_schema::{DataType, Field, Schema, TimeUnit};
use lakeport_storage::{Key, Storage};
use serde_json::Value;

use super::*;

fn schema(extra: bool) -> Schema {
    let mut fields = vec![
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ];
    if extra {
        fields.push(Field::new("score", DataType::Int64, true));
    }
    Schema::new(fields)
}

fn file(root: &Key, batch: &str, attempt: u32, part: u32) -> DataFile {
    DataFile {
        key: Key::from(format!(
            "{root}/batches/{batch}/attempt-{attempt}/data/part-{part:05}.parquet"
        )),
        size: 100 + u64::from(part),
        records: 10,
    }
}

/// Returns each commit's (operation key, batch id, added paths, removed paths).
fn log(dir: &std::path::Path, root: &Key) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let log_dir = dir.join(root.as_ref()).join("_delta_log");
    let mut names: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(log_dir.join(name)).unwrap();
            let mut commit = (String::new(), String::new(), Vec::new(), Vec::new());
            for line in text.lines() {
                let action: Value = serde_json::from_str(line).unwrap();
                if let Some(info) = action.get("commitInfo") {
                    commit.0 = info[OPERATION_KEY].as_str().unwrap_or("").to_owned();
                    commit.1 = info[BATCH_ID_KEY].as_str().unwrap_or("").to_owned();
                } else if let Some(add) = action.get("add") {
                    commit.2.push(add["path"].as_str().unwrap().to_owned());
                } else if let Some(remove) = action.get("remove") {
                    commit.3.push(remove["path"].as_str().unwrap().to_owned());
                }
            }
            commit
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, Storage, Key) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    let root = dataset_root("ACME@AdobeOrg", "prod", "D1");
    (dir, storage, root)
}

#[tokio::test]
async fn a_batch_is_committed_once_even_when_its_commit_is_retried() {
    let (dir, storage, root) = setup();
    let table = Table::open(&storage, &root).unwrap();
    assert_eq!(table.version().await.unwrap(), None);
    let schema = schema(false);
    let files = [file(&root, "B1", 1, 1), file(&root, "B1", 1, 2)];
    let commit = BatchCommit {
        batch_id: "B1",
        schema: &schema,
        files: &files,
        replaces: &[],
        created_ms: 0,
        retry: false,
    };
    let first = table.commit_batch(&commit).await.unwrap();
    assert_eq!((first.version, first.found), (1, false));

    // A retry (a new attempt's files) finds the commit and writes nothing.
    let retried_files = [file(&root, "B1", 2, 1)];
    let retry = BatchCommit {
        files: &retried_files,
        retry: true,
        ..commit.clone()
    };
    let found = table.commit_batch(&retry).await.unwrap();
    assert_eq!((found.version, found.found), (1, true));
    assert_eq!(found.files, files);
    assert_eq!(table.version().await.unwrap(), Some(1));

    let commits = log(dir.path(), &root);
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!(
        commits[1],
        (
            PROMOTE.to_owned(),
            "B1".to_owned(),
            vec![
                "batches/B1/attempt-1/data/part-00001.parquet".to_owned(),
                "batches/B1/attempt-1/data/part-00002.parquet".to_owned()
            ],
            vec![]
        )
    );
}

#[tokio::test]
async fn revert_and_replay_remove_files_and_new_columns_update_the_schema() {
    let (dir, storage, root) = setup();
    let table = Table::open(&storage, &root).unwrap();
    let narrow = schema(false);
    let wide = schema(true);
    for (batch, schema) in [("B1", &narrow), ("B2", &narrow), ("B3", &wide)] {
        let files = [file(&root, batch, 1, 1)];
        table
            .commit_batch(&BatchCommit {
                batch_id: batch,
                schema,
                files: &files,
                replaces: &[],
                created_ms: 0,
                retry: false,
            })
            .await
            .unwrap();
    }
    // B3 added a column: its commit carries the new schema.
    let loaded = table.load().await.unwrap().unwrap();
    let columns: Vec<String> = loaded
        .snapshot()
        .unwrap()
        .schema()
        .fields()
        .map(|field| field.name().clone())
        .collect();
    assert_eq!(columns, ["name", "timestamp", "score"]);

    assert_eq!(table.remove_batch("B1").await.unwrap(), Some(4));
    // Removing again (or a batch never committed) writes nothing.
    assert_eq!(table.remove_batch("B1").await.unwrap(), None);
    assert_eq!(table.remove_batch("NEVER").await.unwrap(), None);

    // A replay of B2 adds its files and removes B2's in one commit.
    let files = [file(&root, "R1", 1, 1)];
    let replay = table
        .commit_batch(&BatchCommit {
            batch_id: "R1",
            schema: &wide,
            files: &files,
            replaces: &["B2".to_owned()],
            created_ms: 0,
            retry: false,
        })
        .await
        .unwrap();
    assert_eq!(replay.version, 5);

    let commits = log(dir.path(), &root);
    let summary: Vec<(&str, &str, usize, Vec<String>)> = commits
        .iter()
        .skip(1)
        .map(|(op, batch, adds, removes)| {
            (op.as_str(), batch.as_str(), adds.len(), removes.clone())
        })
        .collect();
    assert_eq!(
        summary,
        [
            (PROMOTE, "B1", 1, vec![]),
            (PROMOTE, "B2", 1, vec![]),
            (PROMOTE, "B3", 1, vec![]),
            (
                REVERT,
                "B1",
                0,
                vec!["batches/B1/attempt-1/data/part-00001.parquet".to_owned()]
            ),
            (
                PROMOTE,
                "R1",
                1,
                vec!["batches/B2/attempt-1/data/part-00001.parquet".to_owned()]
            ),
        ]
    );
    let live: Vec<String> = {
        let loaded = table.load().await.unwrap().unwrap();
        let mut paths: Vec<String> = loaded
            .snapshot()
            .unwrap()
            .snapshot()
            .file_views(table.log_store.as_ref(), None)
            .map_ok(|file| file.path().into_owned())
            .try_collect()
            .await
            .unwrap();
        paths.sort();
        paths
    };
    assert_eq!(
        live,
        [
            "batches/B3/attempt-1/data/part-00001.parquet",
            "batches/R1/attempt-1/data/part-00001.parquet"
        ]
    );
}

/// Two nodes, each with its own cache, commit to one table in turn, past a checkpoint: each
/// node's cached state follows the other's commits, so versions stay gap-free, every batch
/// is committed once, and a replay removes the files the other node added.
#[tokio::test]
async fn cached_tables_follow_the_commits_of_another_node() {
    let (dir, storage, root) = setup();
    let caches = [TableCache::new(), TableCache::new()];
    let schema = schema(false);
    for index in 0..13u32 {
        let cache = &caches[(index % 2) as usize];
        let table = Table::open(&storage, &root).unwrap().with_cache(cache);
        let batch = format!("B{index}");
        let files = [file(&root, &batch, 1, 1)];
        // The last batch replays the one before it, committed by the other node.
        let replaces = if index == 12 {
            vec!["B11".to_owned()]
        } else {
            Vec::new()
        };
        let committed = table
            .commit_batch(&BatchCommit {
                batch_id: &batch,
                schema: &schema,
                files: &files,
                replaces: &replaces,
                created_ms: 0,
                retry: false,
            })
            .await
            .unwrap();
        assert_eq!(committed.version, u64::from(index) + 1);
    }
    assert!(caches.iter().all(|cache| cache.len() == 1));
    let commits = log(dir.path(), &root);
    assert_eq!(commits.len(), 14, "{commits:?}");
    assert_eq!(
        commits[13].3,
        vec!["batches/B11/attempt-1/data/part-00001.parquet".to_owned()]
    );
    let uncached = Table::open(&storage, &root).unwrap();
    let live = uncached.live_files(None).await.unwrap();
    assert_eq!(live.len(), 12, "{live:?}");
    assert!(!live.iter().any(|path| path.contains("/B11/")));

    // Deleting the table through a cached handle forgets its state.
    let table = Table::open(&storage, &root).unwrap().with_cache(&caches[0]);
    table.delete().await.unwrap();
    assert!(caches[0].is_empty());
}

/// Compaction replaces batch files with one compacted file (no data change); a REVERT of
/// one of its batches, or a replay of one, removes the compacted file and puts the other
/// batches' files back; vacuum deletes only compacted files no longer live and removed
/// before the cutoff, never batch files or live compacted ones.
#[tokio::test]
async fn compacted_files_give_back_their_other_parts_when_a_batch_leaves_and_vacuum_collects_them()
{
    let (dir, storage, root) = setup();
    let table = Table::open(&storage, &root).unwrap();
    let schema = schema(false);
    let mut files = Vec::new();
    for batch in ["B1", "B2", "B3", "B4"] {
        let file = file(&root, batch, 1, 1);
        // Real objects: compaction and vacuum work on storage.
        let path = dir.path().join(file.key.as_ref());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        table
            .commit_batch(&BatchCommit {
                batch_id: batch,
                schema: &schema,
                files: std::slice::from_ref(&file),
                replaces: &[],
                created_ms: 0,
                retry: false,
            })
            .await
            .unwrap();
        files.push(file);
    }
    let compacted = |name: &str, parts: &[DataFile]| {
        let key = table.compacted_key(name);
        let path = dir.path().join(key.as_ref());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; 300]).unwrap();
        Compaction {
            file: DataFile {
                key,
                size: 300,
                records: 10 * parts.len() as u64,
            },
            parts: parts.to_vec(),
        }
    };
    // B1..B3 into one file; B4 stays.
    let first = compacted("C1.parquet", &files[..3]);
    let committed = table.commit_compaction(&[first], 1000).await.unwrap();
    assert_eq!((committed.version, committed.skipped), (Some(5), 0));
    let live = table.live_files(None).await.unwrap();
    assert_eq!(
        live,
        [
            "batches/B4/attempt-1/data/part-00001.parquet",
            "compacted/C1.parquet"
        ]
    );
    let (version, data) = table.live_data_files().await.unwrap().unwrap();
    assert_eq!(version, 5);
    assert_eq!(data.iter().map(|file| file.records).sum::<u64>(), 40);
    assert_eq!(log(dir.path(), &root)[5].0, OPTIMIZE);

    // A compaction whose parts are no longer live (or whose file is gone) is left out.
    let stale = compacted("C2.parquet", &files[..2]);
    let mut unwritten = compacted("C9.parquet", &files[3..]);
    unwritten.file.key = table.compacted_key("never-written.parquet");
    let left_out = table
        .commit_compaction(&[stale, unwritten], 1000)
        .await
        .unwrap();
    assert_eq!((left_out.version, left_out.skipped), (None, 2));
    assert_eq!(table.version().await.unwrap(), Some(5));

    // REVERT of B2: the compacted file goes, B1 and B3 come back.
    assert_eq!(table.remove_batch("B2").await.unwrap(), Some(6));
    assert_eq!(
        table.live_files(None).await.unwrap(),
        [
            "batches/B1/attempt-1/data/part-00001.parquet",
            "batches/B3/attempt-1/data/part-00001.parquet",
            "batches/B4/attempt-1/data/part-00001.parquet",
        ]
    );
    // Version 5 still reads the compacted file.
    assert!(
        table
            .live_files(Some(5))
            .await
            .unwrap()
            .contains(&"compacted/C1.parquet".to_owned())
    );

    // Compact again, then a replay of B4 (its only batch file is in the compacted one).
    let second = compacted(
        "C3.parquet",
        &[files[0].clone(), files[2].clone(), files[3].clone()],
    );
    let committed = table.commit_compaction(&[second], 1000).await.unwrap();
    assert_eq!(committed.version, Some(7));
    let replay = file(&root, "B5", 1, 1);
    let committed = table
        .commit_batch(&BatchCommit {
            batch_id: "B5",
            schema: &schema,
            files: std::slice::from_ref(&replay),
            replaces: &["B4".to_owned()],
            created_ms: 0,
            retry: false,
        })
        .await
        .unwrap();
    assert_eq!(committed.version, 8);
    assert_eq!(
        table.live_files(None).await.unwrap(),
        [
            "batches/B1/attempt-1/data/part-00001.parquet",
            "batches/B3/attempt-1/data/part-00001.parquet",
            "batches/B5/attempt-1/data/part-00001.parquet",
        ]
    );

    // A compaction that crashed before its commit left a file and its parts list.
    let orphan = table.compacted_key("C4.parquet");
    std::fs::write(dir.path().join(orphan.as_ref()), b"x").unwrap();
    let exists = |key: &str| dir.path().join(root.as_ref()).join(key).exists();

    // Nothing was removed before a cutoff in the past.
    let kept = table.vacuum(0).await.unwrap();
    assert_eq!((kept.files, kept.retained), (0, 5));
    assert!(exists("compacted/C1.parquet") && exists("compacted/C1.parquet.parts.json"));

    // With the cutoff now, every compacted file that is not live goes, with its list.
    let vacuumed = table.vacuum(lakeport_now() + 1).await.unwrap();
    assert_eq!(
        (vacuumed.files, vacuumed.bytes, vacuumed.retained),
        (5, 1201, 0)
    );
    for gone in [
        "compacted/C1.parquet",
        "compacted/C1.parquet.parts.json",
        "compacted/C3.parquet",
        "compacted/C3.parquet.parts.json",
        "compacted/C2.parquet",
        "compacted/C4.parquet",
        "compacted/C9.parquet",
    ] {
        assert!(!exists(gone), "{gone} should be deleted");
    }
    for batch in ["B1", "B2", "B3", "B4"] {
        assert!(exists(&format!(
            "batches/{batch}/attempt-1/data/part-00001.parquet"
        )));
    }
}
