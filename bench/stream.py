#!/usr/bin/env python3
"""Streaming ingestion benchmark (spec §10): messages per second through
`POST /collection/{inletId}` from N concurrent keep-alive connections, and MB/s through
`POST /collection/batch/{inletId}`, with p50/p99 acknowledge latency (wrk's), then the time
until every acknowledged record is visible in the dataset, and the send → visible time of
single probe messages against the configured flush interval.

Not a test: run it by hand and copy the table into docs/BENCHMARKS.md with the machine load.

Usage: bench/stream.py [--binary target/release/lakeport] [--connections 64]
                       [--seconds 10] [--batch-messages 500] [--threads 1] [--probes 3]
Starts its own `lakeport serve` (embedded default) in a temporary directory. The server
inherits the environment, so the same run measures PostgreSQL + S3:
  LAKEPORT__METASTORE__URL=postgres://… LAKEPORT__STORAGE__URL=s3://bucket/prefix \
  LAKEPORT__STORAGE__ENDPOINT=http://127.0.0.1:3900 LAKEPORT__STORAGE__ALLOW_HTTP=true \
  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=garage bench/stream.py

Needs: a release build and `wrk` (Debian: `apt-get install wrk`). wrk is the load generator
because a Python client cannot send 10,000 requests a second on the same two cores it
shares with the server; its latencies are per request, from send to full response.
"""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the server helper and the bench dataset)

FLOW = "/data/foundation/flowservice"

# One wrk thread's Lua state: every request carries new records (distinct `_id`s), the bytes
# sent are counted per thread and reported by `done` as one JSON line.
WRK_SCRIPT = r"""
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  tenant = args[1]
  per_request = tonumber(args[2])
  counter = 0
  sent_bytes = 0
end
local function message(n)
  return string.format('{"header":{"source":{"name":"bench"}},"body":{"xdmEntity":{"_id":"w%d-%d","timestamp":"2024-05-01T12:00:00Z","eventType":"web.pageViews","_%s":{"loyalty":{"memberId":"M-%06d","points":%d}}}}}',
    id, n, tenant, n % 1000000, n % 1000)
end
function request()
  local body
  if per_request == 0 then
    counter = counter + 1
    body = message(counter)
  else
    local parts = {}
    for i = 1, per_request do
      counter = counter + 1
      parts[i] = message(counter)
    end
    body = '{"messages":[' .. table.concat(parts, ",") .. ']}'
  end
  sent_bytes = sent_bytes + #body
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  local sent = 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent_bytes")
  end
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"sent_bytes":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, sent, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


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


def wrk(server, inlet, script, args, per_request):
    """Runs wrk against one endpoint; returns its RESULT record."""
    path = f"/collection/batch/{inlet}" if per_request else f"/collection/{inlet}"
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
               "--timeout", "30s", "-s", str(script), f"http://{server.host}:{server.port}{path}",
               "--", ingest.TENANT, str(per_request)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    if result["non2xx"] or result["socket_errors"]:
        sys.exit(f"wrk saw {result['non2xx']} non-2xx answers and {result['socket_errors']} socket errors:\n{output}")
    return result


def landed(server, dataset):
    """Records in the dataset's successful batches (all pages)."""
    total, start = 0, 0
    while True:
        page = server.request(
            "GET", f"/data/foundation/catalog/batches?dataSet={dataset}&limit=100&start={start}")
        total += sum(b.get("recordCount", 0) for b in page.values() if b.get("status") == "success")
        if len(page) < 100:
            return total
        start += 100


def probe(server, inlet, dataset, before, index):
    """Sends one message; returns seconds until it is in a successful batch."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    body = json.dumps({"header": {"source": {"name": "probe"}}, "body": {"xdmEntity": {
        "_id": f"probe-{index}", "timestamp": "2024-05-01T12:00:00Z", "eventType": "web.pageViews"}}})
    started = time.monotonic()
    conn.request("POST", f"/collection/{inlet}", body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"probe: {response.status}")
    while landed(server, dataset) < before + 1:
        time.sleep(0.02)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", help="the lakeport binary (default: target/release/lakeport)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--batch-messages", type=int, default=500)
    parser.add_argument("--probes", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    if args.binary:
        ingest.BINARY = pathlib.Path(args.binary).resolve()
    flush_ms = os.environ.get("LAKEPORT__STREAM__FLUSH_INTERVAL_MS", "5000")
    with tempfile.TemporaryDirectory() as data:
        script = pathlib.Path(data) / "stream.lua"
        script.write_text(WRK_SCRIPT)
        server = ingest.Server(pathlib.Path(data) / "server")
        try:
            dataset = ingest.setup_dataset(server)
            inlet = create_inlet(server, dataset)
            print(f"| mode | connections | messages/s | MB/s | p50 ack ms | p99 ack ms | max ack ms |")
            print("|---|---|---|---|---|---|---|")
            total = 0
            for mode, per_request in (("single", 0), (f"batch of {args.batch_messages}", args.batch_messages)):
                result = wrk(server, inlet, script, args, per_request)
                seconds = result["duration_us"] / 1e6
                messages = result["requests"] * (per_request or 1)
                total += messages
                print(f"| {mode} | {args.connections} | {messages / seconds:,.0f} | "
                      f"{result['sent_bytes'] / 1e6 / seconds:.1f} | {result['p50_us'] / 1000:.1f} | "
                      f"{result['p99_us'] / 1000:.1f} | {result['max_us'] / 1000:.1f} |", flush=True)
            started = time.monotonic()
            # wrk stops with requests in flight, which the server may still acknowledge.
            while (count := landed(server, dataset)) < total:
                time.sleep(0.1)
            print(f"\nall {count:,} records visible {time.monotonic() - started:.1f} s after the last "
                  f"acknowledgement (flush interval {flush_ms} ms)")
            for index in range(args.probes):
                seconds = probe(server, inlet, dataset, landed(server, dataset), index)
                print(f"probe {index + 1}: one message sent → visible in {seconds * 1000:,.0f} ms "
                      f"(flush interval {flush_ms} ms)", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
