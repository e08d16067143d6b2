#!/usr/bin/env python3
"""Query Service compatibility check (spec §11): aepp 0.6.0's `QueryService` (REST) and
`InteractiveQuery2` (PostgreSQL wire through psycopg2), and psycopg2 from PyPI on its own,
against a running `lakeport serve` with its wire endpoint on LAKEPORT_QUERY_PORT.

Ingests rows into a fresh dataset, then:
  - QueryService.connection() names the wire endpoint, the org and the caller's token;
  - QueryService.createQuery runs a SELECT that getQuery polls to SUCCESS (rowCount checked),
    getQueries lists it, cancelQuery on a finished query is refused;
  - createQuery with ctasParameters creates a dataset (CTAS) whose rows, read back over the
    wire, equal the rows ingested; insertIntoParameters appends to it;
  - query templates: createQueryTemplate, getTemplates, getTemplate, a query from the
    template, deleteTemplate;
  - psycopg2 logs in with org id + token, lists the tables and SELECTs the ingested rows,
    and reads the CTAS table with SNAPSHOT AS OF its first batch;
  - InteractiveQuery2(connection()) connects (its constructor reads the qsaccel stubs) and
    its query() returns the rows as a DataFrame.

Usage: LAKEPORT_URL=http://127.0.0.1:8080 LAKEPORT_TOKEN=... LAKEPORT_QUERY_PORT=8081 \
       compat/query_flow.py
Needs: pip install aepp==0.6.0 psycopg2-binary
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

import aepp
import psycopg2
from aepp import queryservice

BASE = os.environ.get("LAKEPORT_URL", "http://127.0.0.1:8080")
TOKEN = os.environ["LAKEPORT_TOKEN"]
WIRE_PORT = int(os.environ["LAKEPORT_QUERY_PORT"])
ORG = "0DEC0DE0123456789ABCDEF0@AdobeOrg"
# The tenant namespace of an org id that starts with a digit is prefixed with "t".
TENANT = "t0dec0de0123456789abcdef0"
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "x-api-key": "compat-query",
    "x-gw-ims-org-id": ORG,
    "x-sandbox-name": "prod",
}
ROWS = [
    {"_id": f"q{i}", "timestamp": "2024-03-01T10:00:00Z",
     f"_{TENANT}": {"member": f"M-{i:03}", "points": i * 7, "tier": "gold" if i % 2 else "silver"}}
    for i in range(6)
]


def fail(message):
    print(f"[FAIL] {message}")
    sys.exit(1)


def ok(message):
    print(f"[ok] {message}", flush=True)


def expect(condition, message):
    if not condition:
        fail(message)


def call(method, path, body=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=dict(HEADERS))
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
            return json.loads(payload) if payload else None
    except urllib.error.HTTPError as err:
        fail(f"{method} {path} answered {err.code}: {err.read()[:500]!r}")


def ingest(suffix):
    """Creates a schema and dataset, ingests ROWS; returns the dataset's table name."""
    group = call("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", {
        "title": f"query compat fields {suffix}", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
        "definitions": {"d": {"properties": {f"_{TENANT}": {"type": "object", "properties": {
            "member": {"type": "string"}, "points": {"type": "integer"}, "tier": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/d"}]})
    schema = call("POST", "/data/foundation/schemaregistry/tenant/schemas", {
        "title": f"query compat {suffix}", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": group["$id"]}]})
    reference = call("POST", "/data/foundation/catalog/dataSets", {
        "name": f"Query Compat {suffix}", "fileDescription": {"format": "json"},
        "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}})
    dataset = reference[0].split("/")[-1]
    batch = call("POST", "/data/foundation/import/batches",
                 {"datasetId": dataset, "inputFormat": {"format": "json"}})["id"]
    lines = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
    call("PUT", f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/rows.json",
         raw=lines, content_type="application/octet-stream")
    call("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE")
    deadline = time.time() + 120
    while True:
        status = call("GET", f"/data/foundation/catalog/batches/{batch}")[batch]["status"]
        if status in ("success", "failed") or time.time() > deadline:
            break
        time.sleep(0.1)
    expect(status == "success", f"the ingested batch ended {status}")
    doc = call("GET", f"/data/foundation/catalog/dataSets/{dataset}")[dataset]
    return doc["tags"]["adobe/pqs/table"][0]


def wait_query(qs, query_id, deadline=120):
    end = time.time() + deadline
    while True:
        current = qs.getQuery(query_id)
        if current.get("state") not in ("SUBMITTED", "IN_PROGRESS") or time.time() > end:
            return current
        time.sleep(0.2)


def main():
    suffix = str(int(time.time() * 1000))
    table = ingest(suffix)
    ok(f"ingested {len(ROWS)} rows into table {table}")
    ns = f"_{TENANT}"
    expected = sorted((row["_id"], row[ns]["member"], row[ns]["points"]) for row in ROWS)

    aepp.configure(org_id=ORG, client_id="compat-query", secret="unused", environment="support",
                   endpoint=BASE, accesstoken=TOKEN, sandbox="prod")
    aepp.config.config_object["connectionType"] = "support"
    qs = queryservice.QueryService()

    conn = qs.connection()
    expect(conn.get("username") == ORG and conn.get("dbName") == "prod:all"
           and conn.get("port") == WIRE_PORT and conn.get("token") == TOKEN,
           f"connection() answered {conn}")
    ok(f"QueryService.connection(): {conn['host']}:{conn['port']} {conn['dbName']}")

    created = qs.createQuery(name="compat count", dbname="prod:all",
                             sql=f"SELECT _id FROM {table} WHERE {ns}.tier = 'gold'")
    expect(created.get("state") == "SUBMITTED", f"createQuery answered {created}")
    done = wait_query(qs, created["id"])
    expect(done.get("state") == "SUCCESS" and done.get("rowCount") == 3, f"the query ended {done}")
    ok(f"QueryService.createQuery + getQuery: {done['state']}, rowCount {done['rowCount']}")
    listed = qs.getQueries(n_results=10)
    expect(any(query["id"] == created["id"] for query in listed), f"getQueries listed {listed}")
    ok(f"QueryService.getQueries lists {len(listed)} queries")
    refused = qs.cancelQuery(created["id"])
    expect(isinstance(refused, dict) and refused.get("status") == 409, f"cancelQuery answered {refused}")
    ok("QueryService.cancelQuery of a finished query: 409")

    ctas_name = f"compat_ctas_{suffix}"
    ctas = qs.createQuery(name="compat ctas", dbname="prod:all",
                          sql=f"SELECT _id AS id, {ns}.member AS member, {ns}.points AS points FROM {table}",
                          ctasParameters={"datasetName": ctas_name, "description": "made by compat"})
    done = wait_query(qs, ctas["id"])
    expect(done.get("state") == "SUCCESS" and done.get("isCTAS") is True, f"the CTAS ended {done}")
    created_dataset = done["_links"]["created_dataset"]["id"]
    ok(f"QueryService.createQuery(ctasParameters): dataset {created_dataset}, {done['rowCount']} rows")
    ctas_batch = call("GET", f"/data/foundation/catalog/dataSets/{created_dataset}")[created_dataset]["lastBatchId"]
    inserted = qs.createQuery(name="compat insert", dbname="prod:all",
                              sql=f"SELECT _id AS id, {ns}.member AS member, {ns}.points AS points FROM {table} WHERE _id = 'q0'",
                              insertIntoParameters={"datasetName": ctas_name})
    done = wait_query(qs, inserted["id"])
    expect(done.get("state") == "SUCCESS" and done.get("rowCount") == 1, f"the INSERT INTO ended {done}")
    ok("QueryService.createQuery(insertIntoParameters): 1 row appended")

    template = qs.createQueryTemplate(name=f"compat template {suffix}",
                                      sql=f"SELECT _id FROM {table} WHERE {ns}.tier = '$tier'",
                                      queryParameters={"tier": "silver"})
    expect("id" in template, f"createQueryTemplate answered {template}")
    expect(any(t["id"] == template["id"] for t in qs.getTemplates()), "getTemplates misses the template")
    expect(qs.getTemplate(template["id"]).get("name") == f"compat template {suffix}", "getTemplate")
    run = qs.createQuery(name="from template", templateId=template["id"])
    done = wait_query(qs, run["id"])
    expect(done.get("state") == "SUCCESS" and done.get("rowCount") == 3, f"the template query ended {done}")
    qs.deleteTemplate(template["id"])
    gone = qs.getTemplate(template["id"])
    expect(isinstance(gone, dict) and gone.get("status") == 404, f"a deleted template answered {gone}")
    ok("QueryService templates: create, list, get, run, delete")

    # psycopg2 from PyPI, as a notebook connects: org id + token, <sandbox>:all.
    with psycopg2.connect(host=conn["host"], port=conn["port"], user=ORG, password=TOKEN,
                          dbname="prod:all", sslmode="disable") as pg:
        with pg.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            tables = {row[0] for row in cursor.fetchall()}
            expect(table in tables and ctas_name in tables, f"information_schema lists {tables}")
            cursor.execute(f"SELECT _id, {ns}.member, {ns}.points FROM {table} ORDER BY _id")
            got = sorted(cursor.fetchall())
            expect(got == expected, f"psycopg2 SELECT returned {got}, expected {expected}")
            cursor.execute(f"SELECT id, member, points FROM {ctas_name} ORDER BY id")
            ctas_rows = sorted(cursor.fetchall())
            with_insert = sorted(expected + [expected[0]])
            expect(ctas_rows == with_insert, f"the CTAS table holds {ctas_rows}, expected {with_insert}")
            # SNAPSHOT (spec §11.3): the CTAS table as of its first batch, before the INSERT INTO.
            cursor.execute(f"SELECT count(*) FROM {ctas_name} SNAPSHOT AS OF '{ctas_batch}'")
            as_of = cursor.fetchone()[0]
            expect(as_of == len(expected), f"SNAPSHOT AS OF the CTAS batch counted {as_of}")
    ok(f"psycopg2: {len(tables)} tables listed, the ingested rows and the CTAS rows read back equal, SNAPSHOT AS OF the CTAS batch")

    interactive = queryservice.InteractiveQuery2(conn)
    frame = interactive.query(f"SELECT _id, {ns}.member AS member, {ns}.points AS points FROM {table} ORDER BY _id")
    got = sorted((row["_id"], row["member"], int(row["points"])) for _, row in frame.iterrows())
    expect(got == expected, f"InteractiveQuery2.query returned {got}")
    interactive.close()
    ok(f"InteractiveQuery2: connected (default merge policy {interactive.default_merge_policy_id}), query() returned {len(got)} rows")


if __name__ == "__main__":
    main()
