#!/usr/bin/env python3
"""Ingestion benchmark: upload → COMPLETE → success through a real `lakeport serve`, for
JSON Lines, CSV and Parquet made from the project's generator (../shared/bench), side by side
with DuckDB converting the same files to Parquet. Also reports the server's peak RSS.

Usage: bench/ingest.py [--rows 400000] [--big-rows 0] [--workdir /tmp/lakeport-bench]
  --big-rows N additionally ingests an N-row JSON Lines file through chunked upload and
  reports the peak RSS (1,700,000 rows ≈ 1 GB).

The server inherits the environment, so the same run measures other backends, e.g. ingest
into S3 with the metadata on PostgreSQL:
  LAKEPORT__METASTORE__URL=postgres://… LAKEPORT__STORAGE__URL=s3://bucket/bench \
  LAKEPORT__STORAGE__ENDPOINT=http://127.0.0.1:3900 AWS_ACCESS_KEY_ID=… \
  AWS_SECRET_ACCESS_KEY=… AWS_REGION=garage bench/ingest.py --skip-duckdb

Needs: a release build (`cargo build --release`), python3, and `pip install duckdb pyarrow`
for the reference converter and the CSV/Parquet inputs.
"""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
ORG = "BENCH0123456789ABCDEF0123@AdobeOrg"
TENANT = "bench0123456789abcdef0123"
TOKEN = "bench-token"
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "x-api-key": "bench",
    "x-gw-ims-org-id": ORG,
    "x-sandbox-name": "prod",
}


BINARY = ROOT / "target" / "release" / "lakeport"
# How often the client asks for the batch's status while it is processed: the figures include
# half of it on average.
POLL = 0.01
UPLOAD_BLOCK = 64 * 1024
# `--taskset 0` pins the server to one CPU, for a comparison with DuckDB on one thread.
TASKSET = None


class Server:
    def __init__(self, data_dir: pathlib.Path, binary: pathlib.Path | None = None, env: dict | None = None):
        """Starts `lakeport serve` (`binary`, default BINARY) on a free port with the data in
        `data_dir`; `env` is added to the inherited environment."""
        self.data_dir = data_dir
        binary = binary or BINARY
        if not binary.exists():
            sys.exit("build first: cargo build --release")
        env = dict(os.environ, RUST_LOG="warn", **(env or {}))
        pinned = ["taskset", "-c", TASKSET] if TASKSET else []
        self.proc = subprocess.Popen(
            pinned + [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--token", TOKEN],
            stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        self.address = line.split("http://")[1].split()[0]
        host, port = self.address.split(":")
        self.host, self.port = host, int(port)

    def request(self, method, path, body=None, headers=None, json_body=None):
        # A file body is sent 64 KiB at a time, as curl does (http.client's default of 8 KiB
        # made the client, not the server, most of the upload time).
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600, blocksize=UPLOAD_BLOCK)
        all_headers = dict(HEADERS)
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers["content-type"] = "application/json"
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        return json.loads(data) if data else None

    def cpu_seconds(self):
        """The server's CPU time so far (user + system, every thread)."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def minor_faults(self):
        """The server's minor page faults so far: memory it touched fresh (or again, after
        the allocator returned it to the system)."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[7])

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def serve_logged(binary: str, port: int, data_dir: pathlib.Path, log_path: pathlib.Path, rust_log: str) -> Server:
    """Starts `lakeport serve` on `port` with its output in `log_path` (benchmarks that read
    the server's log) and returns it once /health answers."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir), "--token", TOKEN],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG=rust_log))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    server = Server.__new__(Server)
    server.host, server.port, server.proc = "127.0.0.1", port, proc
    return server


def setup_dataset(server: Server) -> str:
    group = json.loads((SHARED / "fieldgroup.json").read_text().replace("_acme", f"_{TENANT}"))
    created = server.request("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", json_body=group)
    schema = server.request("POST", "/data/foundation/schemaregistry/tenant/schemas", json_body={
        "title": "Bench events", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": created["$id"]}]})
    reply = server.request("POST", "/data/foundation/catalog/dataSets", json_body={
        "name": "bench events",
        "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}})
    return reply[0].rsplit("/", 1)[1]


def upload(server: Server, batch: str, dataset: str, path: pathlib.Path, chunk_limit=256 * 1024 * 1024):
    name = path.name
    base = f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{name}"
    size = path.stat().st_size
    octet = {"content-type": "application/octet-stream"}
    if size <= chunk_limit:
        with path.open("rb") as body:
            server.request("PUT", base, body=body, headers=dict(octet, **{"content-length": str(size)}))
        return
    server.request("POST", base + "?action=INITIALIZE")
    chunk = 128 * 1024 * 1024
    with path.open("rb") as source:
        offset = 0
        while offset < size:
            data = source.read(chunk)
            end = offset + len(data) - 1
            server.request("PATCH", base, body=data,
                           headers=dict(octet, **{"content-range": f"bytes {offset}-{end}/{size}"}))
            offset = end + 1
    server.request("POST", base + "?action=COMPLETE")


def ingest(server: Server, dataset: str, path: pathlib.Path, fmt: str) -> dict:
    batch = server.request("POST", "/data/foundation/import/batches",
                           json_body={"datasetId": dataset, "inputFormat": {"format": fmt}})["id"]
    started, cpu_before = time.monotonic(), server.cpu_seconds()
    upload(server, batch, dataset, path)
    uploaded = time.monotonic()
    server.request("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE")
    while True:
        doc = server.request("GET", f"/data/foundation/catalog/batches/{batch}")[batch]
        if doc["status"] in ("success", "failed"):
            break
        time.sleep(POLL)
    done = time.monotonic()
    if doc["status"] != "success":
        raise RuntimeError(f"{fmt} batch failed: {doc.get('errors')}")
    mb = path.stat().st_size / 1e6
    return {"format": fmt, "mb": mb, "rows": doc["recordCount"], "upload_s": uploaded - started,
            "total_s": done - started, "mbps": mb / (done - started), "process_s": done - uploaded,
            "cpu_s": server.cpu_seconds() - cpu_before}


def make_inputs(workdir: pathlib.Path, rows: int):
    jsonl = workdir / f"events-{rows}.jsonl"
    if not jsonl.exists():
        subprocess.run([sys.executable, str(SHARED / "gen_events.py"), str(rows), str(jsonl), "--tenant", TENANT], check=True)
    import duckdb
    parquet = workdir / f"events-{rows}.parquet"
    csv = workdir / f"events-{rows}.csv"
    con = duckdb.connect()
    if not parquet.exists():
        con.execute(f"COPY (SELECT * FROM read_json('{jsonl}', format='newline_delimited')) TO '{parquet}' (FORMAT parquet)")
    if not csv.exists():
        # CSV holds no arrays or maps: flatten the scalar leaves into dotted headers.
        t = f"_{TENANT}"
        columns = ["_id", "strftime(\"timestamp\", '%Y-%m-%dT%H:%M:%SZ') AS \"timestamp\"", "eventType"] + [
            f'"{t}"."{group}"."{leaf}" AS "{t}.{group}.{leaf}"'
            for group, leaves in {
                "identity": ["ecid", "crmId"], "person": ["firstName", "lastName", "birthDate", "email"],
                "loyalty": ["memberId", "tier", "points", "joined"], "order": ["priceTotal", "currencyCode", "items"],
            }.items() for leaf in leaves
        ] + [f'"{t}"."{leaf}" AS "{t}.{leaf}"' for leaf in ["channel", "score", "optIn"]]
        con.execute(f"COPY (SELECT {', '.join(columns)} FROM read_json('{jsonl}', format='newline_delimited')) TO '{csv}' (HEADER)")
    return jsonl, csv, parquet


def duckdb_reference(path: pathlib.Path, fmt: str, threads: int) -> tuple[float, float]:
    """DuckDB's MB/s converting `path` to Parquet, and the CPU seconds it took."""
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    reader = {"json": f"read_json('{path}', format='newline_delimited')", "csv": f"read_csv('{path}', header=true)",
              "parquet": f"read_parquet('{path}')"}[fmt]
    out = path.with_suffix(f".duckdb-{threads}.parquet")
    started, cpu_before = time.monotonic(), time.process_time()
    con.execute(f"COPY (SELECT * FROM {reader}) TO '{out}' (FORMAT parquet)")
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_before
    out.unlink()
    return path.stat().st_size / 1e6 / elapsed, cpu


def download_test(server: Server, workdir: pathlib.Path, rows: int):
    """Rejects every row of a big file (a schema the rows cannot satisfy) so that its
    failed-rows file is about as large as the input, then downloads that file with four
    concurrent clients and reports the server's peak RSS."""
    import threading
    big = workdir / f"events-{rows}.jsonl"
    if not big.exists():
        subprocess.run([sys.executable, str(SHARED / "gen_events.py"), str(rows), str(big), "--tenant", TENANT], check=True)
    group = server.request("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", json_body={
        "title": "always missing", "type": "object",
        "definitions": {"d": {"required": [f"_{TENANT}"], "properties": {f"_{TENANT}": {"type": "object", "required": ["never"],
                        "properties": {"never": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/d"}]})
    schema = server.request("POST", "/data/foundation/schemaregistry/tenant/schemas", json_body={
        "title": "Rejecting", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": group["$id"]}]})
    dataset = server.request("POST", "/data/foundation/catalog/dataSets", json_body={
        "name": "rejecting", "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}})[0].rsplit("/", 1)[1]
    batch = server.request("POST", "/data/foundation/import/batches",
                           json_body={"datasetId": dataset, "inputFormat": {"format": "json"}})["id"]
    upload(server, batch, dataset, big)
    server.request("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE")
    while server.request("GET", f"/data/foundation/catalog/batches/{batch}")[batch]["status"] not in ("success", "failed"):
        time.sleep(0.2)
    # Restart so that the peak RSS below covers the downloads only.
    server.stop()
    server = Server(server.data_dir)
    listing = server.request("GET", f"/data/foundation/export/batches/{batch}/failed")
    part = max(listing["data"], key=lambda item: int(item["length"]))
    size = int(part["length"])
    before = server.peak_rss_mb()
    received = [0] * 4

    def fetch(index):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
        conn.request("GET", f"/data/foundation/export/batches/{batch}/failed?path={part['name']}", headers=HEADERS)
        response = conn.getresponse()
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            received[index] += len(chunk)
            time.sleep(0.001)  # a client slower than the disk
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert all(count == size for count in received), (received, size)
    print(f"4 concurrent downloads of a {size / 1e6:.0f} MB file: {elapsed:.1f} s; server peak RSS "
          f"{before:.0f} MB before, {server.peak_rss_mb():.0f} MB after")
    return server


def main():
    global BINARY, TASKSET
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--big-rows", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/lakeport-bench")
    parser.add_argument("--download-rows", type=int, default=0,
                        help="also reject every row of an N-row file and download its ~1 GB failed-rows file with 4 concurrent clients")
    parser.add_argument("--skip-formats", action="store_true", help="skip the per-format ingest comparison")
    parser.add_argument("--skip-duckdb", action="store_true", help="skip the DuckDB reference runs")
    parser.add_argument("--binary", help="the lakeport binary to measure (default: target/release/lakeport)")
    parser.add_argument("--taskset", help="run the server pinned to these CPUs (taskset -c), e.g. 0 for one core")
    parser.add_argument("--formats", default="json,csv,parquet", help="the input formats to measure")
    parser.add_argument("--repeat", type=int, default=1, help="ingest (and convert with DuckDB) each format this many times; medians shown")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the server's data directory (the lake, staged uploads) after the run; by default it is "
                             "removed, since repeated runs would otherwise fill the disk (the inputs are always kept)")
    args = parser.parse_args()
    TASKSET = args.taskset
    if args.binary:
        BINARY = pathlib.Path(args.binary)
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jsonl, csv, parquet = make_inputs(workdir, args.rows)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    server = Server(data_dir)
    try:
        dataset = setup_dataset(server)
        metastore = os.environ.get("LAKEPORT__METASTORE__URL", "sqlite (embedded)").split("@")[-1]
        storage = os.environ.get("LAKEPORT__STORAGE__URL", "local directory (embedded)")
        pinned = f"server pinned to CPUs {TASKSET}" if TASKSET else "server on every CPU"
        print(f"lakeport ingest benchmark, {args.rows} rows; 1 worker; release build; {pinned}; "
              f"metastore {metastore}; storage {storage}")
        # CPU seconds are the whole process's, every thread: the server's from the upload's
        # start to `success` (receiving the upload included), DuckDB's for its COPY. They move
        # far less than wall times when the machine is busy.
        # The ratio to DuckDB on as many threads as the server has CPUs (1 when pinned to one,
        # else 2), taken per repeat from runs next to each other in time and then the median:
        # steadier than the ratio of the medians when the machine's speed drifts.
        same = 1 if TASKSET and "," not in TASKSET and "-" not in TASKSET else 2
        print("| format | input MB | rows | upload s | upload→success s | MB/s (lakeport) | MB/s DuckDB 1 thread | MB/s DuckDB 2 threads "
              f"| ratio to DuckDB {same} thread{'s' if same > 1 else ''} | CPU s (lakeport) | CPU s DuckDB 1 thread | CPU s DuckDB 2 threads |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        wanted = args.formats.split(",")
        formats = [] if args.skip_formats else [
            (path, fmt) for path, fmt in [(jsonl, "json"), (csv, "csv"), (parquet, "parquet")] if fmt in wanted]
        def median(values):
            return sorted(values)[len(values) // 2]

        for path, fmt in formats:
            # With --repeat, each format is ingested (as a new batch) and converted by DuckDB
            # that many times, alternating, and the medians are shown.
            results, references_1, references_2 = [], [], []
            for _ in range(args.repeat):
                results.append(ingest(server, dataset, path, fmt))
                if not args.skip_duckdb:
                    references_1.append(duckdb_reference(path, fmt, 1))
                    references_2.append(duckdb_reference(path, fmt, 2))
            result = sorted(results, key=lambda r: r["total_s"])[len(results) // 2]
            nan = (float("nan"), float("nan"))
            reference_1, cpu_1 = median(references_1) if references_1 else nan
            reference_2, cpu_2 = median(references_2) if references_2 else nan
            cpu = median([r["cpu_s"] for r in results])
            same_references = references_1 if same == 1 else references_2
            ratios = [r["mbps"] / reference[0] for r, reference in zip(results, same_references)]
            ratio = f"{median(ratios):.2f}×" if ratios else "–"
            spread = ""
            if args.repeat > 1:
                spread = f" (of {args.repeat}: {min(r['mbps'] for r in results):.1f}–{max(r['mbps'] for r in results):.1f})"
            print(f"| {fmt} | {result['mb']:.0f} | {result['rows']} | {result['upload_s']:.2f} | {result['total_s']:.2f} "
                  f"| {result['mbps']:.1f}{spread} | {reference_1:.1f} | {reference_2:.1f} | {ratio} "
                  f"| {cpu:.2f} | {cpu_1:.2f} | {cpu_2:.2f} |", flush=True)
        print(f"server peak RSS so far: {server.peak_rss_mb():.0f} MB")
        if args.big_rows:
            big = workdir / f"events-{args.big_rows}.jsonl"
            if not big.exists():
                subprocess.run([sys.executable, str(SHARED / "gen_events.py"), str(args.big_rows), str(big), "--tenant", TENANT], check=True)
            result = ingest(server, dataset, big, "json")
            print(f"big JSON Lines: {result['mb']:.0f} MB, {result['rows']} rows in {result['total_s']:.1f} s "
                  f"({result['mbps']:.1f} MB/s); server peak RSS {server.peak_rss_mb():.0f} MB")
        if args.download_rows:
            server = download_test(server, workdir, args.download_rows)
    finally:
        server.stop()
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
