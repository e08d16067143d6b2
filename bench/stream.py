#!/usr/bin/env python3
"""Streaming ingestion benchmark (spec §10): messages per second through
`POST /collection/{inletId}` from N concurrent keep-alive senders, and MB/s through
`POST /collection/batch/{inletId}`, with p50/p99 acknowledge latency, then the time until
every acknowledged record is visible in the dataset (send → successful batch).

Not a test: run it by hand on a quiet machine and copy the table into docs/BENCHMARKS.md.

Usage: bench/stream.py [--binary target/release/lakeport] [--senders 8] [--seconds 10]
                       [--batch-messages 500]
Starts its own `lakeport serve` (embedded default) in a temporary directory; set
LAKEPORT__METASTORE__URL / LAKEPORT__STORAGE__* to measure PostgreSQL + S3.
"""
import argparse
import http.client
import json
import pathlib
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the server helper and the bench dataset)

FLOW = "/data/foundation/flowservice"


def create_inlet(server, dataset):
    base = server.request("POST", f"{FLOW}/connections", json_body={
        "name": "bench inlet", "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {"name": "bench"}}})["id"]
    inlet = server.request("GET", f"{FLOW}/connections/{base}")["items"][0]["auth"]["params"]["inletId"]
    source = server.request("POST", f"{FLOW}/sourceConnections", json_body={
        "name": "s", "baseConnectionId": base,
        "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}})["id"]
    target = server.request("POST", f"{FLOW}/targetConnections", json_body={
        "name": "t", "params": {"dataSetId": dataset},
        "connectionSpec": {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"}})["id"]
    server.request("POST", f"{FLOW}/flows", json_body={
        "name": "f", "flowSpec": {"id": "d8a6f005-7eaf-4153-983e-e8574508b877", "version": "1.0"},
        "sourceConnectionIds": [source], "targetConnectionIds": [target]})
    return inlet


def message(n):
    return {"header": {"source": {"name": "bench"}}, "body": {"xdmEntity": {
        "_id": f"m{n}", "timestamp": "2024-05-01T12:00:00Z", "eventType": "web.pageViews",
        f"_{ingest.TENANT}": {"loyalty": {"memberId": f"M-{n % 1000000:06d}", "points": n % 1000}}}}}


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


def run(server, inlet, senders, seconds, batch_messages, counter):
    """Runs the senders for `seconds`; returns (messages, bytes, latencies)."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"messages": 0, "bytes": 0, "latencies": []}

    def sender():
        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        sent, size, latencies = 0, 0, []
        while time.monotonic() < stop:
            with lock:
                first = counter[0]
                counter[0] += batch_messages or 1
            if batch_messages:
                body = json.dumps({"messages": [message(first + i) for i in range(batch_messages)]})
                path = f"/collection/batch/{inlet}"
            else:
                body = json.dumps(message(first))
                path = f"/collection/{inlet}"
            started = time.monotonic()
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            latencies.append(time.monotonic() - started)
            if response.status not in (200, 207):
                raise RuntimeError(f"{path}: {response.status}")
            sent += batch_messages or 1
            size += len(body)
        with lock:
            totals["messages"] += sent
            totals["bytes"] += size
            totals["latencies"].extend(latencies)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def landed(server, dataset):
    batches = server.request("GET", f"/data/foundation/catalog/batches?dataSet={dataset}&limit=100")
    return sum(b.get("recordCount", 0) for b in batches.values() if b.get("status") == "success")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", help="the lakeport binary (default: target/release/lakeport)")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch-messages", type=int, default=500)
    args = parser.parse_args()
    if args.binary:
        ingest.BINARY = pathlib.Path(args.binary).resolve()
    with tempfile.TemporaryDirectory() as data:
        server = ingest.Server(pathlib.Path(data))
        try:
            dataset = ingest.setup_dataset(server)
            inlet = create_inlet(server, dataset)
            counter = [0]
            print("| mode | senders | messages/s | MB/s | p50 ack ms | p99 ack ms |")
            print("|---|---|---|---|---|---|")
            total = 0
            for mode, batch in (("single", 0), (f"batch of {args.batch_messages}", args.batch_messages)):
                result = run(server, inlet, args.senders, args.seconds, batch, counter)
                total += result["messages"]
                print(f"| {mode} | {args.senders} | {result['messages'] / args.seconds:,.0f} | "
                      f"{result['bytes'] / 1e6 / args.seconds:.1f} | {percentile(result['latencies'], 0.5):.1f} | "
                      f"{percentile(result['latencies'], 0.99):.1f} |")
            started = time.monotonic()
            while landed(server, dataset) < total:
                time.sleep(0.1)
            print(f"all {total:,} acknowledged records visible in the dataset "
                  f"{time.monotonic() - started:.1f} s after the last acknowledgement")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
