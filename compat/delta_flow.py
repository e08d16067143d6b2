"""Open lake check (spec §12): every dataset is a Delta Lake table that other engines read.

Ingests batches (one partial), replays one and reverts another through the APIs, then reads
the dataset's table at its `basePath` with the `deltalake` and `polars` packages from PyPI,
at the latest version and at an earlier `version=`, and checks that they return exactly the
rows the Data Access API serves (now, and before the replay and the revert). Then compacts
the table (Lakeport's optimize job) and reverts a batch inside the compacted file, reading
the table again after each.

Usage: LAKEPORT_URL=http://127.0.0.1:8080 LAKEPORT_TOKEN=... python3 compat/delta_flow.py
On S3 the credentials and the endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION and LAKEPORT__STORAGE__ENDPOINT (or AWS_ENDPOINT_URL).
Needs: pip install deltalake polars pyarrow
"""

import io
import json
import os
import sys
import time
import urllib.error
import urllib.request

import deltalake
import polars as pl
import pyarrow.parquet as pq

BASE = os.environ.get("LAKEPORT_URL", "http://127.0.0.1:8080")
TOKEN = os.environ["LAKEPORT_TOKEN"]
ORG = "DE17A0123456789ABCDEF0AB@AdobeOrg"
TENANT = "de17a0123456789abcdef0ab"
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "x-api-key": "compat-delta",
    "x-gw-ims-org-id": ORG,
    "x-sandbox-name": "prod",
}


def fail(message):
    print(f"[FAIL] {message}")
    sys.exit(1)


def ok(message):
    print(f"[ok] {message}")


def call(method, path, body=None, raw=None, content_type="application/json"):
    url = path if path.startswith("http") else BASE + path
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=dict(HEADERS))
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
            return response.status, payload
    except urllib.error.HTTPError as err:
        fail(f"{method} {path} answered {err.code}: {err.read()[:500]!r}")


def call_json(method, path, body=None):
    _, payload = call(method, path, body)
    return json.loads(payload) if payload else None


def create_dataset():
    group = call_json("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", {
        "title": f"delta loyalty {os.getpid()}", "type": "object",
        "definitions": {"l": {"properties": {f"_{TENANT}": {"type": "object", "properties": {
            "loyaltyId": {"type": "string"},
            "points": {"type": "integer"},
            "tier": {"type": "string"},
            "joined": {"type": "string", "format": "date-time"},
        }}}}},
        "allOf": [{"$ref": "#/definitions/l"}],
    })["$id"]
    schema = call_json("POST", "/data/foundation/schemaregistry/tenant/schemas", {
        "title": f"delta schema {os.getpid()}", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": group}],
    })["$id"]
    created = call_json("POST", "/data/foundation/catalog/dataSets", {
        "name": "delta dataset",
        "schemaRef": {"id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"format": "json"},
    })
    return created[0].split("/")[-1]


def row(key, points):
    return {"_id": key, f"_{TENANT}": {"loyaltyId": f"L-{key}", "points": points,
                                       "tier": "gold", "joined": "2024-03-01T10:00:00Z"}}


def ingest(dataset, rows, extra=None):
    body = {"datasetId": dataset, "inputFormat": {"format": "json"}}
    body.update(extra or {})
    batch = call_json("POST", "/data/foundation/import/batches", body)["id"]
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    call("PUT", f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/rows.json",
         raw=lines, content_type="application/octet-stream")
    call("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE")
    return batch


def wait_batch(batch):
    for _ in range(600):
        doc = call_json("GET", f"/data/foundation/catalog/batches/{batch}")[batch]
        if doc["status"] in ("success", "failed"):
            return doc
        time.sleep(0.2)
    fail(f"batch {batch} did not finish")


def dataset_doc(dataset):
    return call_json("GET", f"/data/foundation/catalog/dataSets/{dataset}")[dataset]


def wait_table_version(dataset, version):
    for _ in range(300):
        if dataset_doc(dataset).get("tableVersion") == version:
            return
        time.sleep(0.2)
    fail(f"dataset {dataset} never showed tableVersion {version}: {dataset_doc(dataset)}")


def wait_job(dataset, job):
    """Follows a table job (optimize, vacuum) until it is done."""
    for _ in range(300):
        if job["status"] == "done":
            return job
        if job["status"] == "failed":
            fail(f"{job['operation']} job failed: {job.get('error')}")
        time.sleep(0.2)
        job = call_json("GET", f"/data/foundation/catalog/dataSets/{dataset}/jobs/{job['id']}")
    fail(f"{job['operation']} job {job['id']} never finished: {job}")


def sort_rows(rows):
    return sorted(rows, key=lambda r: r["_id"])


def access_rows(dataset):
    """Every row Data Access serves for the dataset's successful batches."""
    batches = call_json("GET", f"/data/foundation/catalog/batches?dataSet={dataset}&limit=100")
    rows = []
    for batch_id, batch in batches.items():
        if batch.get("status") != "success":
            continue
        listing = call_json("GET", f"/data/foundation/export/batches/{batch_id}/files")
        for entry in listing["data"]:
            files = call_json("GET", entry["_links"]["self"]["href"])
            for file in files["data"]:
                _, payload = call("GET", file["_links"]["self"]["href"])
                rows.extend(pq.read_table(io.BytesIO(payload)).to_pylist())
    return sort_rows(rows)


def storage_options(location):
    if not location.startswith("s3://"):
        return None
    endpoint = os.environ.get("LAKEPORT__STORAGE__ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    options = {
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = "true" if endpoint.startswith("http://") else "false"
    return options


def read_with_deltalake(location, version=None):
    table = deltalake.DeltaTable(location, version=version, storage_options=storage_options(location))
    return sort_rows(table.to_pyarrow_table().to_pylist())


def read_with_polars(location, version=None):
    frame = pl.read_delta(location, version=version, storage_options=storage_options(location))
    return sort_rows(frame.to_arrow().to_pylist())


def same(engine, got, expected):
    if got != expected:
        got_ids = [r["_id"] for r in got]
        expected_ids = [r["_id"] for r in expected]
        fail(f"{engine}: {len(got)} rows {got_ids} != Data Access {len(expected)} rows {expected_ids}"
             + ("" if got_ids != expected_ids else f"; first differing row {next(g for g, e in zip(got, expected) if g != e)}"))
    ok(f"{engine}: {len(got)} rows, the same as Data Access")


def main():
    print(f"deltalake {deltalake.__version__}, polars {pl.__version__}")
    dataset = create_dataset()
    doc = dataset_doc(dataset)
    location = doc["basePath"]
    if doc["tags"].get("adobe/siphon/table/format") != ["delta"]:
        fail(f"dataset tags: {doc['tags']}")
    ok(f"dataset {dataset} is a Delta table at {location}")

    first = ingest(dataset, [row("a1", 1), row("a2", 2), row("a3", 3)])
    partial_rows = [row("b1", 4), row("b2", 5), row("b3", 6)]
    partial_rows[2][f"_{TENANT}"]["points"] = "not a number"
    partial = ingest(dataset, partial_rows, {"partialIngestionPercent": 50})
    third = ingest(dataset, [row("c1", 7), row("c2", 8)])
    for batch in (first, partial, third):
        done = wait_batch(batch)
        if done["status"] != "success":
            fail(f"batch {batch} ended {done['status']}: {done.get('errors')}")
    before = access_rows(dataset)
    if len(before) != 7:
        fail(f"Data Access serves {len(before)} rows, expected 7")
    earlier = dataset_doc(dataset)["tableVersion"]
    ok(f"3 batches ingested (one partial), table version {earlier}")
    same(f"deltalake (latest, v{earlier})", read_with_deltalake(location), before)
    same(f"polars (latest, v{earlier})", read_with_polars(location), before)

    replay = ingest(dataset, [row("r1", 9)],
                    {"replay": {"predecessors": [first], "reason": "replace"}})
    if wait_batch(replay)["status"] != "success":
        fail("the replay failed")
    call("POST", f"/data/foundation/import/batches/{third}?action=REVERT")
    wait_table_version(dataset, earlier + 2)
    after = access_rows(dataset)
    if [r["_id"] for r in after] != ["b1", "b2", "r1"]:
        fail(f"Data Access serves {[r['_id'] for r in after]} after the replay and the revert")
    ok(f"replayed {first} and reverted {third}: table version {earlier + 2}")
    same("deltalake (latest)", read_with_deltalake(location), after)
    same("polars (latest)", read_with_polars(location), after)
    same(f"deltalake (version={earlier})", read_with_deltalake(location, earlier), before)
    same(f"polars (version={earlier})", read_with_polars(location, earlier), before)

    history = deltalake.DeltaTable(location, storage_options=storage_options(location)).history()
    named = [(h.get("lakeportOperation"), h.get("lakeportBatchId")) for h in reversed(history)]
    # The three first batches commit in the order the workers finish them.
    expected = [(None, None)] + sorted(("promote", b) for b in (first, partial, third)) + [
        ("promote", replay), ("revert", third)]
    if named[:1] + sorted(named[1:4]) + named[4:] != expected:
        fail(f"history {named} != {expected}")
    ok("history: one commit per successful batch, then the replay and the revert")

    # Compaction (Lakeport's optimize job): the same rows from one file, older versions intact.
    job = wait_job(dataset, call_json("POST", f"/data/foundation/catalog/dataSets/{dataset}/optimize"))
    uris = deltalake.DeltaTable(location, storage_options=storage_options(location)).file_uris()
    files = [uri.split("/datasets/", 1)[-1].split("/", 1)[-1] for uri in uris]
    if job["result"]["filesAdded"] != 1 or len(files) != 1 or not files[0].startswith("compacted/"):
        fail(f"optimize did {job['result']}, live files {files}")
    ok(f"optimize compacted {job['result']['filesRemoved']} files into {files[0]} (version {job['result']['version']})")
    same("deltalake (after optimize)", read_with_deltalake(location), after)
    same("polars (after optimize)", read_with_polars(location), after)
    same(f"deltalake (version={earlier}, before optimize)", read_with_deltalake(location, earlier), before)
    # A REVERT of a batch inside the compacted file puts the other batches' files back.
    call("POST", f"/data/foundation/import/batches/{partial}?action=REVERT")
    wait_table_version(dataset, job["result"]["version"] + 1)
    final = access_rows(dataset)
    if [r["_id"] for r in final] != ["r1"]:
        fail(f"Data Access serves {[r['_id'] for r in final]} after reverting {partial}")
    same("deltalake (revert after optimize)", read_with_deltalake(location), final)
    same("polars (revert after optimize)", read_with_polars(location), final)


if __name__ == "__main__":
    main()
