#!/usr/bin/env python3
"""Compatibility suite: drives a running `lakeport serve` with the real `aepp` client from PyPI
(schema → dataset → batch → upload → complete → poll → list files → download → compare).

aepp talks to Adobe's gateway; its "support" environment takes an explicit endpoint and an
access token, so it reaches Lakeport without contacting Adobe's login service.

Usage: LAKEPORT_URL=http://127.0.0.1:8080 LAKEPORT_TOKEN=... compat/aepp_flow.py
Needs: pip install aepp duckdb
"""
import io
import json
import os
import sys
import time

import aepp
from aepp import catalog, dataaccess, ingestion, schema

BASE = os.environ.get("LAKEPORT_URL", "http://127.0.0.1:8080")
TOKEN = os.environ["LAKEPORT_TOKEN"]
ORG = "C0FFEE0123456789ABCDEF01@AdobeOrg"
CLIENT = "compat-aepp"
STEPS = []


def step(name, ok, detail=""):
    STEPS.append((name, ok))
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


def main():
    aepp.configure(org_id=ORG, client_id=CLIENT, secret="unused", environment="support",
                   endpoint=BASE, accesstoken=TOKEN, sandbox="prod")
    # configure() leaves connectionType unset when a token is given; the connector reads it
    # when the token is still valid, so say it is a "support" (pre-issued token) connection.
    aepp.config.config_object["connectionType"] = "support"

    registry = schema.Schema()
    stats = registry.getStats()
    tenant = stats.get("tenantId")
    step("schema.getStats returns the tenantId", bool(tenant), tenant)

    suffix = str(int(time.time() * 1000))
    namespace = f"_{tenant}"
    group = registry.createFieldGroup({
        "title": f"aepp loyalty {suffix}", "description": "created by aepp", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
        "definitions": {"loyalty": {"properties": {namespace: {"type": "object", "properties": {
            "memberId": {"type": "string", "pattern": "^M-[0-9]{3}$"},
            "points": {"type": "integer", "minimum": 0},
            "tier": {"type": "string", "enum": ["silver", "gold"]}}}}}},
        "allOf": [{"$ref": "#/definitions/loyalty"}]})
    step("schema.createFieldGroup", "$id" in group, group.get("$id", json.dumps(group)[:300]))

    created = registry.createSchema({
        "title": f"aepp events {suffix}", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
                  {"$ref": group["$id"], "type": "object", "meta:xdmType": "object"}]})
    step("schema.createSchema", "$id" in created, created.get("$id", json.dumps(created)[:300]))

    full = registry.getSchema(created["$id"], full=True)
    fields = full.get("properties", {}).get(namespace, {}).get("properties", {})
    step("schema.getSchema(full=True) resolves the field group", "memberId" in fields)
    listed = registry.getSchemas()
    step("schema.getSchemas lists it", any(item.get("$id") == created["$id"] for item in listed))

    cat = catalog.Catalog()
    reference = cat.createDataSet(name=f"aepp dataset {suffix}", schemaId=created["$id"])
    dataset_id = reference[0].split("/")[-1]
    step("catalog.createDataSet", len(dataset_id) == 24, dataset_id)
    datasets = cat.getDataSets()
    step("catalog.getDataSets contains it", dataset_id in datasets)

    ingest = ingestion.DataIngestion()
    batch = ingest.createBatch(datasetId=dataset_id, format="json", multiline=True)
    batch_id = batch.get("id")
    step("ingestion.createBatch", batch.get("status") == "loading", batch_id)

    rows = [{"_id": f"aepp-{i}", "timestamp": "2025-03-01T10:00:00Z",
             namespace: {"memberId": f"M-{i:03d}", "points": i * 10, "tier": "gold" if i % 2 else "silver"}}
            for i in range(25)]
    ingest.uploadSmallFile(batchId=batch_id, datasetId=dataset_id, filePath="aepp/events.json", data=rows)
    step("ingestion.uploadSmallFile", True)
    status = ingest.headFileStatus(batchId=batch_id, datasetId=dataset_id, filePath="aepp/events.json")
    step("ingestion.headFileStatus", status is not None, str(status)[:200])
    ingest.uploadSmallFileFinish(batchId=batch_id)
    step("ingestion.uploadSmallFileFinish (COMPLETE)", True)

    deadline = time.time() + 120
    while True:
        current = cat.getBatch(batch_id)
        state = current.get(batch_id, current).get("status")
        if state in ("success", "failed") or time.time() > deadline:
            break
        time.sleep(0.2)
    step("catalog.getBatch polls to success", state == "success", json.dumps(current)[:400])
    record_count = current[batch_id].get("recordCount")
    step("batch recordCount", record_count == len(rows), str(record_count))

    access = dataaccess.DataAccess()
    files = access.getBatchFiles(batch_id)
    data = files.get("data", []) if isinstance(files, dict) else files
    step("dataaccess.getBatchFiles", len(data) >= 1, json.dumps(files)[:300])
    file_id = data[0]["dataSetFileId"]
    listing = access.getFiles(dataSetFileId=file_id)
    names = [item["name"] for item in listing.get("data", [])]
    step("dataaccess.getFiles lists the Parquet file", bool(names) and names[0].endswith(".parquet"), str(names))
    content = access.getFiles(dataSetFileId=file_id, path=names[0])
    raw = content.getvalue() if hasattr(content, "getvalue") else content
    step("dataaccess.getFiles downloads bytes", isinstance(raw, (bytes, bytearray)) and raw[:4] == b"PAR1", f"{len(raw)} bytes")

    import duckdb
    path = f"/tmp/aepp-compat-{suffix}.parquet"
    with open(path, "wb") as handle:
        handle.write(raw)
    got = duckdb.sql(f"SELECT _id, \"{namespace}\".memberId, \"{namespace}\".points FROM read_parquet('{path}') ORDER BY _id").fetchall()
    expected = sorted((r["_id"], r[namespace]["memberId"], r[namespace]["points"]) for r in rows)
    step("downloaded Parquet equals the uploaded rows", got == expected, f"{len(got)} rows")
    preview = access.getPreview(dataset_id)
    step("dataaccess.getPreview", isinstance(preview, list) and len(preview) == len(rows), str(len(preview)))
    print(f"aepp {aepp.__version__}: {len(STEPS)} checks passed")


if __name__ == "__main__":
    main()
