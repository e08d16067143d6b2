#!/usr/bin/env python3
"""Table compaction (`lakeport dataset optimize`, spec §12): ingests --batches small batches of
--rows JSON Lines rows each (the many small files streaming leaves) into one dataset through
a real `lakeport serve`, then queues the optimize job over HTTP and times it from the request
to `done`, with what it rewrote (files, bytes, rows) and the table's live files before and
after.

Usage: bench/optimize.py [--batches 200] [--rows 1000] [--binary target/release/lakeport]
The server inherits the environment, so LAKEPORT__STORAGE__URL=s3://… (with the AWS_*
variables and LAKEPORT__STORAGE__ENDPOINT) measures it on S3.
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import ingest

PORT = 18389


def table_files(server, dataset):
    """The table's live files at its current version, every page of the listing."""
    listing = server.request("GET", f"/data/foundation/export/datasets/{dataset}/table")
    version, files = listing["version"], list(listing["data"])
    while "next" in listing.get("_links", {}):
        href = listing["_links"]["next"]["href"]
        path = href[href.index("/data/"):]
        listing = server.request("GET", path)
        files.extend(listing["data"])
    return version, files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--binary", default=str(ingest.BINARY))
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="lakeport-optimize-bench-"))
    rows = workdir / "rows.json"
    subprocess.run([sys.executable, str(ingest.SHARED / "gen_events.py"), str(args.rows), str(rows),
                    "--tenant", ingest.TENANT], check=True)
    server = ingest.serve_logged(args.binary, PORT, workdir / "data", workdir / "server.log", "warn")
    proc = server.proc
    try:
        dataset = ingest.setup_dataset(server)
        for _ in range(args.batches):
            ingest.ingest(server, dataset, rows, "json")
        version_before, before = table_files(server, dataset)
        started = time.monotonic()
        job = server.request("POST", f"/data/foundation/catalog/dataSets/{dataset}/optimize", json_body={})
        while job["status"] not in ("done", "failed"):
            time.sleep(0.05)
            job = server.request("GET", f"/data/foundation/catalog/dataSets/{dataset}/jobs/{job['id']}")
        elapsed = time.monotonic() - started
        if job["status"] != "done":
            sys.exit(f"optimize failed: {job}")
        version_after, after = table_files(server, dataset)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    result = job["result"]
    print(json.dumps({
        "batches": args.batches, "rows_per_batch": args.rows,
        "live_files": {"before": len(before), "after": len(after)},
        "versions": [version_before, version_after],
        "rewritten": result,
        "job_s": round(elapsed, 2),
        "mb_per_s_read": round(result["bytesRemoved"] / 1e6 / elapsed, 1) if elapsed else None,
        "rows_per_s": round(result["records"] / elapsed) if elapsed else None,
    }, indent=2))
    # The server's data and log; kept only when the run failed above, to look into.
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
