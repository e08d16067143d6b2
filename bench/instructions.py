#!/usr/bin/env python3
"""Counts the instructions of the file pipeline (decode, validate, convert, encode Parquet) per
input format, under valgrind's callgrind: a figure that does not move with the machine's
load. Wall and CPU times on the shared 2-core machines move by ±10% between runs, more than
most single changes to the engine; instruction counts repeat exactly, so a change of 0.3%
is visible. They are not time: a cache miss or a page fault costs no instruction here.

Usage: bench/instructions.py [--binary PATH] [--rows 40000] [--workdir DIR] [--top N]

  --binary  the pipeline bench, built with
            `cargo bench -p lakeport-parquet --bench pipeline --no-run` (default: the newest
            target/release/deps/pipeline-*)
  --top N   also lists the N functions with the most instructions of their own, per format

Needs valgrind, and (for the inputs) python3 with `pip install duckdb`. The rows are those of
../shared/bench/gen_events.py for the `acme` tenant, the schema the pipeline bench uses. The
bench reads each file three times (its median of three), so the count covers three passes.
"""
import argparse
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import ingest  # noqa: E402

PASSES = 3


def newest_bench() -> pathlib.Path:
    candidates = [path for path in (ROOT / "target" / "release" / "deps").glob("pipeline-*")
                  if path.is_file() and path.suffix == "" and path.stat().st_mode & 0o111]
    if not candidates:
        sys.exit("build the pipeline bench first: "
                 "cargo bench -p lakeport-parquet --bench pipeline --no-run")
    return max(candidates, key=lambda path: path.stat().st_mtime)


def count(binary: pathlib.Path, path: pathlib.Path, out: pathlib.Path) -> tuple[int, pathlib.Path]:
    """The instructions of the bench's measuring process (the bench runs itself again as a
    child with the server's allocator settings), and its callgrind file."""
    for old in out.glob("callgrind.*"):
        old.unlink()
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         f"--callgrind-out-file={out}/callgrind.%p", str(binary), str(path), "--threads", "1"],
        capture_output=True, text=True, check=True)
    counts = [int(found.replace(",", "")) for found in re.findall(r"Collected : ([\d,]+)", run.stderr)]
    if not counts:
        sys.exit(f"no instruction count from valgrind:\n{run.stderr[-2000:]}")
    files = sorted(out.glob("callgrind.*"), key=lambda file: file.stat().st_size)
    return max(counts), files[-1]


def top(callgrind: pathlib.Path, n: int):
    annotated = subprocess.run(["callgrind_annotate", str(callgrind)], capture_output=True,
                               text=True, check=True).stdout
    lines = [line for line in annotated.splitlines() if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", line)]
    for line in lines[1:n + 1]:
        line = re.sub(r"/root/\.cargo/registry/src/[^/]+/|/rustc/[0-9a-f]+/", "", line)
        print("   ", line[:160])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", type=pathlib.Path)
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/lakeport-instructions"))
    ap.add_argument("--top", type=int, default=0)
    args = ap.parse_args()
    binary = args.binary or newest_bench()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ingest.TENANT = "acme"
    files = ingest.make_inputs(args.workdir, args.rows)
    print(f"{binary.name}, {args.rows} rows, {PASSES} passes, one thread")
    print("| Format | Instructions | per row | per input byte |")
    print("|---|---|---|---|")
    for fmt, path in zip(["JSON Lines", "CSV", "Parquet"], files):
        total, callgrind = count(binary, path, args.workdir)
        rows = args.rows * PASSES
        size = path.stat().st_size * PASSES
        print(f"| {fmt} | {total / 1e6:,.1f} M | {total / rows:,.0f} | {total / size:.1f} |")
        if args.top:
            top(callgrind, args.top)


if __name__ == "__main__":
    main()
