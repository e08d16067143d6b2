#!/usr/bin/env python3
"""Delta commit cost per batch: ingests --batches batches of --rows JSON Lines rows each into
one dataset through a real `lakeport serve`, one after the other, and reads from the server's
log how long each batch's Delta commit took (`batch committed to the dataset's table`,
`duration_ms`) next to the whole promotion job (`job finished`, `duration_ms`).

Usage: bench/delta_commit.py [--batches 100] [--rows 1000] [--binary target/release/lakeport]
The server inherits the environment, so LAKEPORT__STORAGE__URL=s3://… (with the AWS_*
variables and LAKEPORT__STORAGE__ENDPOINT) measures commits into S3.
"""
import argparse
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import ingest

PORT = 18387


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--binary", default=str(ingest.BINARY))
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="lakeport-delta-bench-"))
    data_dir = workdir / "data"
    log_path = workdir / "server.log"
    rows = workdir / "rows.json"
    subprocess.run([sys.executable, str(ingest.SHARED / "gen_events.py"), str(args.rows), str(rows),
                    "--tenant", ingest.TENANT], check=True)
    server = ingest.serve_logged(args.binary, PORT, data_dir, log_path, "warn,lakeport_jobs=info")
    proc = server.proc
    try:
        dataset = ingest.setup_dataset(server)
        started = time.monotonic()
        for _ in range(args.batches):
            ingest.ingest(server, dataset, rows, "json")
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = log_path.read_text()
    commits = [int(m) for m in re.findall(r"batch committed to the dataset's table.*?duration_ms=(\d+)", text)]
    jobs = [int(m) for m in re.findall(r'job finished job.id=\d+ job.kind="?promote_batch"?.*?duration_ms=(\d+)', text)]
    if len(commits) != args.batches:
        sys.exit(f"found {len(commits)} commit lines for {args.batches} batches in {log_path}")
    print(json.dumps({
        "batches": args.batches, "rows_per_batch": args.rows, "input_mb_per_batch": round(rows.stat().st_size / 1e6, 2),
        "commit_ms": {"p50": percentile(commits, 0.5), "p90": percentile(commits, 0.9),
                      "max": max(commits), "mean": round(statistics.mean(commits), 1),
                      "first_10_mean": round(statistics.mean(commits[:10]), 1),
                      "last_10_mean": round(statistics.mean(commits[-10:]), 1)},
        "promotion_job_ms": {"p50": percentile(jobs, 0.5), "mean": round(statistics.mean(jobs), 1)} if jobs else None,
        "commit_share_of_job": round(sum(commits) / sum(jobs), 3) if jobs else None,
        "wall_s": round(elapsed, 1),
    }, indent=2))
    # The server's data and log; kept only when the run failed above, to look into.
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
