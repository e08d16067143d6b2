#!/usr/bin/env python3
"""Soak: mixed traffic from many clients against a running `lakeport serve`, for a while.

Each client loops over a weighted mix of what real producers and consumers do: create a
dataset, create a batch and upload one to three small JSON Lines files then COMPLETE it,
list datasets and batches, download a promoted Parquet file through Data Access, and write
to the Schema Registry (create a field group, then PUT a new description on it). It counts
every answer by status; any 5xx is a failure. The server's RSS (`VmRSS` of
/proc/<pid>/status) is sampled every few seconds. At the end every acknowledged write is
read back: each created dataset and field group exists; each completed batch has reached
`success` with exactly the rows its acknowledged uploads held or, when the worker has not got
to it within --drain-secs, still holds every acknowledged upload at its full size.

Usage:
  bench/soak.py --url http://127.0.0.1:8080 --pid <server pid> --token T [--duration 600]
  bench/soak.py --serve target/release/lakeport [--duration 600]   # starts its own server
Options: --clients 50, --sample-secs 5. Python standard library only. Exit status 1 when a
5xx was seen or an acknowledged write was lost.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ORG = "SOAK0123456789ABCDEF01234@AdobeOrg"
TENANT = "soak0123456789abcdef01234"


class Api:
    """One keep-alive HTTP/1.1 connection per client thread, reopened after errors."""

    def __init__(self, base, token, stats):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": "soak",
            "x-gw-ims-org-id": ORG,
            "x-sandbox-name": "prod",
        }
        self.stats = stats
        self.conn = None
        self.last_headers = {}

    def call(self, method, path, body=None, content_type="application/json", op="other", accept=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = dict(self.headers)
        if accept:
            headers["accept"] = accept
        if body is not None:
            headers["content-type"] = content_type
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                reply = self.conn.getresponse()
                data = reply.read()
                self.last_headers = {k.lower(): v for k, v in reply.getheaders()}
                break
            except (OSError, http.client.HTTPException) as err:
                self.conn.close()
                self.conn = None
                # A keep-alive connection the server closed between requests is retried once
                # on a fresh connection; anything else is a transport error.
                if attempt == 1:
                    self.stats.record(op, "transport", f"{method} {path}: {err}")
                    return None, b""
        self.stats.record(op, reply.status, f"{method} {path}: {data[:300]!r}")
        return reply.status, data


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.server_errors = []
        self.transport_errors = []

    def record(self, op, status, detail):
        with self.lock:
            key = (op, status)
            self.counts[key] = self.counts.get(key, 0) + 1
            if status == "transport":
                self.transport_errors.append(detail)
            elif status >= 500:
                self.server_errors.append(f"{status} {detail}")


class Ledger:
    """Every write the server acknowledged, to be read back at the end."""

    def __init__(self):
        self.lock = threading.Lock()
        self.datasets = []
        self.field_groups = {}  # $id -> the body it was created with
        self.batches = {}  # batch id -> rows in acknowledged uploads
        self.uploads = {}  # batch id -> [(upload path, bytes)] acknowledged
        self.completed = set()
        self.promoted = []  # batch ids seen in success, for downloads

    def add(self, attr, value):
        with self.lock:
            getattr(self, attr).append(value)


def rows(count, offset):
    out = []
    for i in range(offset, offset + count):
        out.append(json.dumps({
            "_id": f"e{i}", "timestamp": "2024-05-01T12:00:00Z",
            f"_{TENANT}": {"n": i, "text": "soak row " * 4}}))
    return ("\n".join(out) + "\n").encode()


def create_dataset(api, schema_id, ledger, n):
    status, data = api.call("POST", "/data/foundation/catalog/dataSets", {
        "name": f"soak dataset {n}",
        "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"}},
        op="dataset create")
    if status == 201:
        dataset = json.loads(data)[0].rsplit("/", 1)[1]
        ledger.add("datasets", dataset)
        return dataset
    return None


def ingest_batch(api, rng, ledger):
    with ledger.lock:
        dataset = rng.choice(ledger.datasets)
    status, data = api.call("POST", "/data/foundation/import/batches",
                            {"datasetId": dataset, "inputFormat": {"format": "json"}}, op="batch create")
    if status != 201:
        return
    batch = json.loads(data)["id"]
    with ledger.lock:
        ledger.batches[batch] = 0
        ledger.uploads[batch] = []
    for part in range(rng.randint(1, 3)):
        count = rng.randint(1, 400)
        path = f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/part-{part}.json"
        body = rows(count, part * 1000)
        status, _ = api.call("PUT", path, body, "application/octet-stream", op="upload")
        if status == 200:
            with ledger.lock:
                ledger.batches[batch] += count
                ledger.uploads[batch].append((path, len(body)))
    status, _ = api.call("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE", op="complete")
    if status == 200:
        with ledger.lock:
            ledger.completed.add(batch)


def list_catalog(api, rng):
    kind = rng.choice(["dataSets", "batches"])
    api.call("GET", f"/data/foundation/catalog/{kind}?limit={rng.randint(1, 50)}&orderBy=desc:created",
             op="catalog list")


def download(api, rng, ledger):
    with ledger.lock:
        if not ledger.promoted:
            return
        batch = rng.choice(ledger.promoted)
    status, data = api.call("GET", f"/data/foundation/export/batches/{batch}/files", op="download")
    if status != 200:
        return
    files = json.loads(data).get("data", [])
    if not files:
        return
    file_id = files[0]["dataSetFileId"]
    status, data = api.call("GET", f"/data/foundation/export/files/{urllib.parse.quote(file_id)}", op="download")
    if status != 200:
        return
    for entry in json.loads(data).get("data", []):
        name = urllib.parse.quote(entry["name"])
        api.call("GET", f"/data/foundation/export/files/{urllib.parse.quote(file_id)}?path={name}", op="download")


def registry_write(api, rng, ledger, n):
    with ledger.lock:
        existing = list(ledger.field_groups.items())
    if existing and rng.random() < 0.4:
        group_id, body = rng.choice(existing)
        path = f"/data/foundation/schemaregistry/tenant/fieldgroups/{urllib.parse.quote(group_id, safe='')}"
        api.call("PUT", path, dict(body, description=f"revised {n}"), op="registry write")
        return
    body = {
        "title": f"soak group {n}", "type": "object", "description": "first",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
        "definitions": {"d": {"properties": {f"_{TENANT}": {"type": "object", "properties": {
            f"f{n.replace('-', '_')}": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/d"}]}
    status, data = api.call("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", body, op="registry write")
    if status == 201:
        with ledger.lock:
            ledger.field_groups[json.loads(data)["$id"]] = body


def client(index, args, schema_id, ledger, stats, stop):
    rng = random.Random(index)
    api = Api(args.url, args.token, stats)
    n = 0
    while not stop.is_set():
        n += 1
        tag = f"{index}-{n}"
        pick = rng.random()
        if pick < 0.03:
            create_dataset(api, schema_id, ledger, tag)
        elif pick < 0.40:
            ingest_batch(api, rng, ledger)
        elif pick < 0.65:
            list_catalog(api, rng)
        elif pick < 0.85:
            download(api, rng, ledger)
        else:
            registry_write(api, rng, ledger, tag)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def threads_of(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def watch_promotions(args, ledger, stop):
    """Finds batches that reached success, so that clients have something to download."""
    api = Api(args.url, args.token, Stats())
    seen = set()
    while not stop.is_set():
        status, data = api.call("GET", "/data/foundation/catalog/batches?limit=100&status=success&orderBy=desc:created")
        if status == 200:
            for batch in json.loads(data):
                if batch not in seen:
                    seen.add(batch)
                    ledger.add("promoted", batch)
        stop.wait(2)


def verify(args, ledger, stats):
    """Reads every acknowledged write back; returns the list of losses."""
    api = Api(args.url, args.token, stats)
    lost = []
    for dataset in ledger.datasets:
        status, _ = api.call("GET", f"/data/foundation/catalog/dataSets/{dataset}", op="verify")
        if status != 200:
            lost.append(f"dataset {dataset}: {status}")
    for group_id, body in ledger.field_groups.items():
        status, data = api.call("GET", f"/data/foundation/schemaregistry/tenant/fieldgroups/{urllib.parse.quote(group_id, safe='')}",
                                op="verify", accept="application/vnd.adobe.xed+json; version=1")
        if status != 200 or json.loads(data).get("title") != body["title"]:
            lost.append(f"field group {group_id}: {status}")
    # A completed batch is either promoted (its record count must be every acknowledged
    # row) or still queued for the worker, when every acknowledged upload must still be
    # staged at its full size. Waits up to --drain-secs for the worker to catch up first.
    deadline = time.time() + args.drain_secs
    pending = set(ledger.completed)
    while pending:
        for batch in sorted(pending):
            status, data = api.call("GET", f"/data/foundation/catalog/batches/{batch}", op="verify")
            if status == 200 and json.loads(data)[batch]["status"] in ("success", "failed"):
                doc = json.loads(data)[batch]
                pending.discard(batch)
                expected = ledger.batches[batch]
                if doc["status"] != "success" or doc.get("recordCount") != expected:
                    lost.append(f"batch {batch}: {doc['status']}, {doc.get('recordCount')} records of {expected}")
        if not pending or time.time() >= deadline:
            break
        time.sleep(2)
    unpromoted = len(pending)
    for batch in sorted(pending):
        for path, size in ledger.uploads[batch]:
            status, _ = api.call("HEAD", path, op="verify")
            reply_range = api.last_headers.get("range") if status == 200 else None
            if reply_range != f"bytes=0-{size - 1}":
                lost.append(f"upload {path}: {status}, range {reply_range} for {size} bytes")
    print(f"verified: {len(ledger.completed) - unpromoted} promoted batches by record count, "
          f"{unpromoted} still queued for the worker by their staged uploads' sizes", flush=True)
    return lost


def setup(args):
    api = Api(args.url, args.token, Stats())
    status, data = api.call("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", {
        "title": "soak fields", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
        "definitions": {"d": {"properties": {f"_{TENANT}": {"type": "object", "properties": {
            "n": {"type": "integer"}, "text": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/d"}]})
    assert status == 201, data
    status, data = api.call("POST", "/data/foundation/schemaregistry/tenant/schemas", {
        "title": "soak events", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": json.loads(data)["$id"]}]})
    assert status == 201, data
    return json.loads(data)["$id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--token", default="soak-token")
    parser.add_argument("--serve", help="a lakeport binary to start on a fresh data directory")
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sample-secs", type=float, default=5)
    parser.add_argument("--drain-secs", type=float, default=120)
    args = parser.parse_args()
    server = None
    if args.serve:
        data_dir = tempfile.mkdtemp(prefix="lakeport-soak-")
        server = subprocess.Popen(
            [args.serve, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--token", args.token],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
        line = server.stdout.readline()
        args.url = "http://" + line.split("http://")[1].split()[0]
        args.pid = server.pid
        print(f"server {args.url} pid {args.pid}, data in {data_dir}", flush=True)
    if not args.url or not args.pid:
        parser.error("give --url and --pid of a running server, or --serve BINARY")

    schema_id = setup(args)
    ledger, stats, stop = Ledger(), Stats(), threading.Event()
    api = Api(args.url, args.token, stats)
    for n in range(5):
        create_dataset(api, schema_id, ledger, f"seed-{n}")
    samples = [(0.0, rss_mb(args.pid))]
    print(f"t=0s rss={samples[0][1]:.0f} MB; {args.clients} clients for {args.duration:.0f} s", flush=True)
    threads = [threading.Thread(target=client, args=(i, args, schema_id, ledger, stats, stop), daemon=True)
               for i in range(args.clients)]
    threads.append(threading.Thread(target=watch_promotions, args=(args, ledger, stop), daemon=True))
    started = time.time()
    for thread in threads:
        thread.start()
    while time.time() - started < args.duration:
        time.sleep(args.sample_secs)
        elapsed = time.time() - started
        rss = rss_mb(args.pid)
        samples.append((elapsed, rss))
        with stats.lock:
            total = sum(stats.counts.values())
            errors = len(stats.server_errors)
        print(f"t={elapsed:.0f}s rss={rss:.0f} MB threads={threads_of(args.pid)} requests={total} 5xx={errors}",
              flush=True)
    stop.set()
    for thread in threads:
        thread.join(timeout=180)
    lost = verify(args, ledger, stats)
    samples.append((time.time() - started, rss_mb(args.pid)))

    print("\n== requests by operation and status")
    for (op, status), count in sorted(stats.counts.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        print(f"  {op:16} {status!s:10} {count}")
    print(f"acknowledged: {len(ledger.datasets)} datasets, {len(ledger.field_groups)} field groups, "
          f"{len(ledger.completed)} completed batches ({sum(ledger.batches[b] for b in ledger.completed)} rows)")
    print("\n== RSS (MB)")
    values = [rss for _, rss in samples if rss is not None]
    loaded = [(t, rss) for t, rss in samples if rss is not None and 0 < t <= args.duration]
    if loaded:
        def window(lo, hi):
            part = [rss for t, rss in loaded if lo <= t / args.duration < hi]
            return f"{min(part):.0f}–{max(part):.0f}" if part else "-"
        print(f"  start {values[0]:.0f}, peak {max(values):.0f}, after verification {values[-1]:.0f}")
        for lo in (0, 0.25, 0.5, 0.75):
            print(f"  {lo * 100:3.0f}–{(lo + 0.25) * 100:3.0f}% of the run: {window(lo, lo + 0.25)}")
        half = [(t, rss) for t, rss in loaded if t >= args.duration / 2]
        if len(half) >= 2:
            mean_t = sum(t for t, _ in half) / len(half)
            mean_r = sum(r for _, r in half) / len(half)
            slope = sum((t - mean_t) * (r - mean_r) for t, r in half) / max(
                sum((t - mean_t) ** 2 for t, _ in half), 1e-9)
            print(f"  slope over the second half: {slope * 60:+.1f} MB/min")
    print(f"\n5xx: {len(stats.server_errors)}; transport errors: {len(stats.transport_errors)}; "
          f"lost acknowledged writes: {len(lost)}")
    kinds = {}
    for line in lost:
        kinds.setdefault(line.split()[0], []).append(line)
    for line in (stats.server_errors[:10] + stats.transport_errors[:10]
                 + [line for group in kinds.values() for line in group[:10]]):
        print("  " + line)
    if server:
        # Graceful shutdown waits for the running promotion; a soak does not.
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=60)
        # A soak writes gigabytes; the data is kept only when something was lost, to look into.
        if not (stats.server_errors or lost):
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(1 if stats.server_errors or lost else 0)


if __name__ == "__main__":
    main()
