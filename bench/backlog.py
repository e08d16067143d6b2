#!/usr/bin/env python3
"""A backlog of batches: uploads K batches of one file, completes them together and measures
the server until every one is `success` (CPU seconds, wall time, minor page faults, peak
RSS), alternating the given binaries round after round.

    bench/backlog.py FILE K ROUNDS BINARY [BINARY ...]

FILE is a `.jsonl`, `.csv` or `.parquet` file of `../shared/bench/gen_events.py` rows (as
`bench/ingest.py` makes them). Medians over the rounds; peak RSS is the largest.
"""
import pathlib
import statistics
import sys
import tempfile
import time

import ingest


def run(binary: str, path: pathlib.Path, fmt: str, count: int) -> tuple:
    with tempfile.TemporaryDirectory(prefix="lakeport-backlog-") as data:
        server = ingest.Server(pathlib.Path(data), pathlib.Path(binary), {"LAKEPORT__QUERY__ENABLED": "false"})
        try:
            dataset = ingest.setup_dataset(server)
            batches = []
            for _ in range(count):
                batch = server.request("POST", "/data/foundation/import/batches",
                                       json_body={"datasetId": dataset, "inputFormat": {"format": fmt}})["id"]
                ingest.upload(server, batch, dataset, path)
                batches.append(batch)
            time.sleep(0.5)
            cpu, faults, started = server.cpu_seconds(), server.minor_faults(), time.monotonic()
            for batch in batches:
                server.request("POST", f"/data/foundation/import/batches/{batch}?action=COMPLETE")
            for batch in batches:
                while True:
                    doc = server.request("GET", f"/data/foundation/catalog/batches/{batch}")[batch]
                    if doc["status"] == "success":
                        break
                    if doc["status"] == "failed":
                        raise RuntimeError(f"batch {batch} failed: {doc.get('errors')}")
                    time.sleep(ingest.POLL)
            return (server.cpu_seconds() - cpu, time.monotonic() - started,
                    server.minor_faults() - faults, server.peak_rss_mb())
        finally:
            server.stop()


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    path, count, rounds, binaries = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    fmt = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}[path.suffix[1:]]
    results = {binary: [] for binary in binaries}
    for _ in range(rounds):
        for binary in binaries:
            results[binary].append(run(binary, path, fmt, count))
    print(f"| binary | CPU s | wall s | minor faults | peak RSS |  ({count} × {path.name}, {rounds} rounds)")
    print("|---|---|---|---|---|")
    for binary, runs in results.items():
        print(f"| {binary} | {statistics.median(r[0] for r in runs):.2f} | {statistics.median(r[1] for r in runs):.3f} "
              f"| {statistics.median(r[2] for r in runs):,.0f} | {max(r[3] for r in runs):.0f} MB |")


if __name__ == "__main__":
    main()
