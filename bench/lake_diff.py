#!/usr/bin/env python3
"""Compares the Parquet parts of two lakes batch by batch, as DuckDB reads them: the rows
(each part's rows against the other's, as multisets), and per column chunk the statistics
(the deprecated min/max fields and the current ones), null counts, value counts, codec and
encodings; sizes are shown side by side. Written to check Lakeport's own column encoder
against the parquet crate's writer on the same inputs.

Usage: bench/lake_diff.py OLD_DATA_DIR NEW_DATA_DIR

Each directory is a `lakeport serve --data-dir` after the same uploads in the same order,
e.g. two runs of `bench/ingest.py --skip-duckdb --keep-data --binary …` whose
`/tmp/lakeport-bench/data` was moved aside in between. Exits 1 on any difference.
Needs: `pip install duckdb`.
"""
import glob
import sys

import duckdb

CHUNK = ("select row_group_id, path_in_schema, type, stats_min, stats_max, stats_null_count, "
         "stats_min_value, stats_max_value, num_values, compression, encodings, total_compressed_size "
         "from parquet_metadata('{}') order by row_group_id, column_id")


def parts(data_dir: str) -> list[str]:
    # Part files sort by batch id (ULIDs, in creation order) then part number.
    return sorted(glob.glob(f"{data_dir}/objects/lake/**/data/*.parquet", recursive=True))


def main() -> int:
    old, new = parts(sys.argv[1]), parts(sys.argv[2])
    print(f"{len(old)} parts before, {len(new)} after")
    con = duckdb.connect()
    differences = abs(len(old) - len(new))
    for before, after in zip(old, new):
        only_before = con.execute(f"select count(*) from (select * from read_parquet('{before}') "
                                  f"except all select * from read_parquet('{after}'))").fetchone()[0]
        only_after = con.execute(f"select count(*) from (select * from read_parquet('{after}') "
                                 f"except all select * from read_parquet('{before}'))").fetchone()[0]
        rows = con.execute(f"select count(*) from read_parquet('{after}')").fetchone()[0]
        print(f"{after.split('/batches/')[1][:26]}: {rows} rows; {only_before} only before, {only_after} only after")
        differences += only_before + only_after
        chunks_before = con.execute(CHUNK.format(before)).fetchall()
        chunks_after = con.execute(CHUNK.format(after)).fetchall()
        differences += abs(len(chunks_before) - len(chunks_after))
        size_before = size_after = 0
        for x, y in zip(chunks_before, chunks_after):
            size_before += x[-1]
            size_after += y[-1]
            same_encodings = set(x[10].split(", ")) == set(y[10].split(", "))
            if x[:10] != y[:10] or not same_encodings:
                differences += 1
                print("  differs:", x[:-1], "\n          ", y[:-1])
        change = (size_after - size_before) / max(size_before, 1)
        print(f"  {len(chunks_after)} column chunks; {size_before:,} bytes before, {size_after:,} after ({change:+.2%})")
    print("the same rows and chunk statistics" if differences == 0 else f"{differences} differences")
    return 0 if differences == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
