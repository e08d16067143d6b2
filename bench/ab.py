#!/usr/bin/env python3
"""Compares servers on the same ingest, alternating them in the same minutes: upload →
COMPLETE → success of one file, each configuration in turn, round after round. On the shared
2-core machines the speed drifts by 10–40% within an hour, more than most changes are worth;
runs next to each other in time drift together, so their medians compare.

Usage: bench/ab.py [--format json] [--rounds 5] [--rows 400000] [--workdir DIR]
                   [--taskset 0] NAME=BINARY[,VAR=VALUE...] ...

Each configuration is a name, a `lakeport` binary and environment variables for its server,
e.g. the allocator's purge delay against the default build:

  bench/ab.py --format parquet base=target/release/lakeport \\
      delay10=target/release/lakeport,MIMALLOC_PURGE_DELAY=10

Reports, per configuration, the medians of the server's CPU seconds, the wall time and its
minor page faults per ingest, and its peak RSS after the first ingest and at the end. Every
server runs at once (their Query Service off), each with its own data directory under the
workdir. The inputs are bench/ingest.py's (`pip install duckdb` makes them).
"""
import argparse
import pathlib
import shutil
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ingest  # noqa: E402


def configuration(text: str) -> tuple[str, pathlib.Path, dict]:
    name, _, rest = text.partition("=")
    binary, *variables = rest.split(",")
    if not name or not binary:
        sys.exit(f"a configuration is NAME=BINARY[,VAR=VALUE...], not {text!r}")
    env = {}
    for variable in variables:
        key, equals, value = variable.partition("=")
        if not equals:
            sys.exit(f"{variable!r} in {text!r} is not VAR=VALUE")
        env[key] = value
    return name, pathlib.Path(binary), env


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", default="json", choices=["json", "csv", "parquet"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--workdir", default="/tmp/lakeport-bench")
    parser.add_argument("--taskset", help="pin every server to these CPUs (taskset -c)")
    parser.add_argument("configurations", nargs="+", metavar="NAME=BINARY[,VAR=VALUE...]")
    args = parser.parse_args()
    configurations = [configuration(text) for text in args.configurations]
    if len({name for name, _, _ in configurations}) != len(configurations):
        sys.exit("configuration names must differ")
    ingest.TASKSET = args.taskset
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jsonl, csv, parquet = ingest.make_inputs(workdir, args.rows)
    path = {"json": jsonl, "csv": csv, "parquet": parquet}[args.format]

    servers = {}
    try:
        for name, binary, env in configurations:
            data_dir = workdir / f"ab-{name}"
            shutil.rmtree(data_dir, ignore_errors=True)
            # Several servers at once: the Query Service's fixed port would clash.
            server = ingest.Server(data_dir, binary, dict(env, LAKEPORT__QUERY__ENABLED="false"))
            servers[name] = (server, ingest.setup_dataset(server))
        runs = {name: [] for name in servers}
        first_peak = {}
        for round_ in range(args.rounds):
            for name, (server, dataset) in servers.items():
                faults = server.minor_faults()
                result = ingest.ingest(server, dataset, path, args.format)
                runs[name].append((result["cpu_s"], result["total_s"], server.minor_faults() - faults))
                if round_ == 0:
                    first_peak[name] = server.peak_rss_mb()
        print(f"{args.format}, {path.stat().st_size / 1e6:.0f} MB, {args.rounds} rounds alternated; medians")
        print("| configuration | CPU s | wall s | MB/s | minor faults | peak RSS after 1 ingest | peak RSS at the end |")
        print("|---|---|---|---|---|---|---|")
        for name, (server, _) in servers.items():
            cpu, wall, faults = (statistics.median(column) for column in zip(*runs[name]))
            print(f"| {name} | {cpu:.2f} | {wall:.3f} | {path.stat().st_size / 1e6 / wall:.1f} | {faults:,.0f} "
                  f"| {first_peak[name]:.0f} MB | {server.peak_rss_mb():.0f} MB |")
    finally:
        for server, _ in servers.values():
            server.stop()
            # Each configuration's lake holds every round's batch: hundreds of MB per run.
            shutil.rmtree(server.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
