#!/usr/bin/env python3
"""Query Service benchmark (spec §11): a dataset of --batches × --rows rows ingested by a real
release `lakeport serve`, then a handful of typical queries through psql (Debian's client,
over the PostgreSQL wire) next to DuckDB reading the same Parquet files Lakeport wrote, in one
run and with the same number of threads.

Usage: bench/query.py [--rows 1000000] [--batches 10] [--repeat 3] [--threads 2]
  The rows come from ../shared/bench/gen_events.py (one file, converted to Parquet by DuckDB
  and ingested --batches times: each batch its own files, so `_id`s repeat across batches).

Needs: a release build (`cargo build --release`), psql, `pip install duckdb`.
"""
import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import ingest

QUERY_PORT = 15433
NS = f"_{ingest.TENANT}"
QUERIES = {
    "count": "SELECT count(*) FROM {t}",
    "filter + group by nested": (
        f"SELECT {NS}.loyalty.tier AS tier, count(*) AS n, avg({NS}.\"order\".\"priceTotal\") AS avg_total "
        f"FROM {{t}} WHERE {NS}.channel = 'web' GROUP BY {NS}.loyalty.tier ORDER BY tier"
    ),
    "top-N": (
        f"SELECT _id, {NS}.loyalty.points AS points FROM {{t}} "
        f"ORDER BY {NS}.loyalty.points DESC, _id LIMIT 10"
    ),
    "distinct count": f"SELECT count(DISTINCT {NS}.identity.\"crmId\") FROM {{t}}",
    "time range": (
        "SELECT \"eventType\", count(*) FROM {t} "
        "WHERE timestamp >= TIMESTAMP '2024-03-01' AND timestamp < TIMESTAMP '2024-04-01' "
        "GROUP BY \"eventType\" ORDER BY \"eventType\""
    ),
}


def timed(fn, repeat):
    results, times = None, []
    for _ in range(repeat):
        started = time.monotonic()
        results = fn()
        times.append(time.monotonic() - started)
    return results, statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/lakeport-query-bench")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a session setting for every Lakeport statement, e.g. "
                             "datafusion.execution.parquet.pushdown_filters=true")
    parser.add_argument("--binary", help="the lakeport binary (default: target/release/lakeport)")
    parser.add_argument("--hold", type=float, default=0, metavar="SECONDS",
                        help="keep the server up this long after the queries (to profile it: "
                             "its pid and the psql command are printed)")
    args = parser.parse_args()
    if args.binary:
        ingest.BINARY = pathlib.Path(args.binary)
    if not shutil.which("psql"):
        sys.exit("needs psql (apt-get install postgresql-client)")
    import duckdb

    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jsonl = workdir / f"events-{args.rows}.jsonl"
    parquet = workdir / f"events-{args.rows}.parquet"
    if not jsonl.exists():
        subprocess.run([sys.executable, str(ingest.SHARED / "gen_events.py"), str(args.rows), str(jsonl),
                        "--tenant", ingest.TENANT], check=True)
    if not parquet.exists():
        duckdb.connect().execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format='newline_delimited')) TO '{parquet}' (FORMAT parquet)")
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    os.environ["LAKEPORT__QUERY__LISTEN"] = f"127.0.0.1:{QUERY_PORT}"
    server = ingest.Server(data_dir)
    try:
        dataset = ingest.setup_dataset(server)
        started = time.monotonic()
        total = 0
        for index in range(args.batches):
            result = ingest.ingest(server, dataset, parquet, "parquet")
            total += result["rows"]
            print(f"batch {index + 1}/{args.batches}: {result['rows']} rows in {result['total_s']:.1f} s", flush=True)
        print(f"ingested {total} rows in {time.monotonic() - started:.0f} s")
        doc = server.request("GET", f"/data/foundation/catalog/dataSets/{dataset}")[dataset]
        table = doc["tags"]["adobe/pqs/table"][0]
        # The batches' data files (no batch is reverted or replayed here, so all are live);
        # not the log's checkpoints.
        files = sorted(str(path) for path in data_dir.rglob(f"datasets/{dataset}/batches/**/*.parquet"))
        print(f"table {table}: {len(files)} Parquet files, {sum(os.path.getsize(f) for f in files) / 1e6:.0f} MB")

        settings = "".join(f"SET {name} = {value}; " for name, value in
                           (setting.split("=", 1) for setting in args.set))
        if settings:
            print(f"session settings: {settings}")

        def psql(sql):
            out = subprocess.run(
                ["psql", f"host=127.0.0.1 port={QUERY_PORT} user={ingest.ORG} dbname=prod:all",
                 "-X", "-q", "-v", "ON_ERROR_STOP=1", "-Atc", settings + sql],
                env=dict(os.environ, PGPASSWORD=ingest.TOKEN), capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"psql failed on {sql}: {out.stderr}")
            return out.stdout.strip()

        def psql_session(sql, repeat):
            """Runs `sql` `repeat` times in one psql session (one login), with psql's \\timing:
            the time from sending each statement to its last row, no process start or login."""
            script = "\\timing on\n" + settings + "\n" + (sql + ";\n") * repeat
            out = subprocess.run(
                ["psql", f"host=127.0.0.1 port={QUERY_PORT} user={ingest.ORG} dbname=prod:all",
                 "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"],
                input=script, env=dict(os.environ, PGPASSWORD=ingest.TOKEN), capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"psql failed on {sql}: {out.stderr}")
            times = [float(line.split()[1]) / 1000 for line in out.stdout.splitlines()
                     if line.startswith("Time: ")]
            return statistics.median(times[-repeat:])

        # A login alone, to subtract the connection cost the psql figures include.
        _, login, _ = timed(lambda: psql("SELECT 1"), args.repeat)
        con = duckdb.connect()
        con.execute(f"SET threads={args.threads}")
        file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({file_list})")

        def duck(sql):
            # DuckDB reads `_ns.field` as table `_ns`: qualify struct paths with the view.
            rows = con.execute(sql.replace(f"{NS}.", f"t.{NS}.")).fetchall()
            return "\n".join("|".join(format_value(v) for v in row) for row in rows)

        print(f"\npsql login + `SELECT 1`: {login * 1000:.0f} ms (median of {args.repeat}); "
              f"DuckDB {duckdb.__version__}, {args.threads} threads; server: {args.threads} cores shared")
        print("| Query | Lakeport via psql (median / best) | DuckDB on the same files (median / best) | Ratio (median) "
              "| Lakeport in an open session (median) | Ratio | Same result |")
        print("|---|---|---|---|---|---|---|")
        for name, sql in QUERIES.items():
            ours, ours_med, ours_best = timed(lambda: psql(sql.format(t=table)), args.repeat)
            theirs, duck_med, duck_best = timed(lambda: duck(sql.format(t="t")), args.repeat)
            in_session = psql_session(sql.format(t=table), args.repeat)
            same = normalise(ours) == normalise(theirs)
            print(f"| {name} | {ours_med * 1000:.0f} / {ours_best * 1000:.0f} ms | "
                  f"{duck_med * 1000:.0f} / {duck_best * 1000:.0f} ms | {ours_med / duck_med:.2f}× | "
                  f"{in_session * 1000:.0f} ms | {in_session / duck_med:.2f}× | "
                  f"{'yes' if same else 'NO'} |", flush=True)
            if not same:
                print(f"  lakeport: {ours[:300]!r}\n  duckdb:   {theirs[:300]!r}")
        if args.hold > 0:
            print(f"\nserver pid {server.proc.pid}, up for {args.hold:.0f} s: PGPASSWORD={ingest.TOKEN} "
                  f"psql 'host=127.0.0.1 port={QUERY_PORT} user={ingest.ORG} dbname=prod:all' (table {table})",
                  flush=True)
            time.sleep(args.hold)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def format_value(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def normalise(text):
    out = []
    for line in text.splitlines():
        cells = []
        for cell in line.split("|"):
            try:
                number = float(cell)
                cells.append(f"{number:.6g}")
            except ValueError:
                cells.append(cell)
        out.append("|".join(cells))
    return out


if __name__ == "__main__":
    main()
