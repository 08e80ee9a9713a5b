"""The polars-py peer of the ingest stage: the same three FMA CSV files to typed Parquet.

Usage: ingest_polars.py FMA_DIR OUT_DIR
Needs polars (pip install polars). features.csv has three header rows (feature, statistics,
number) and tracks.csv two (table, field): their names are joined as the pipeline joins them
(`chroma_cens.kurtosis.01`, `track.listens`); genres.csv has one. Prints the whole wall time
(reading, parsing, writing), which is what the pipeline's ingest row measures too (it also
hashes and publishes).
"""
import sys
import time

import polars as pl

start = time.perf_counter()
src, out = sys.argv[1], sys.argv[2]

with open(f"{src}/features.csv") as f:
    rows = [next(f).rstrip("\n").split(",") for _ in range(4)]
names = ["track_id"] + [".".join(parts) for parts in zip(*(r[1:] for r in rows[:3]))]
features = pl.read_csv(
    f"{src}/features.csv",
    skip_rows=4,
    has_header=False,
    new_columns=names,
    schema_overrides={n: pl.Float32 for n in names[1:]} | {"track_id": pl.Int64},
)
features.write_parquet(f"{out}/features.parquet", compression="snappy")

with open(f"{src}/tracks.csv") as f:
    top = next(f).rstrip("\n").split(",")
    field = next(f).rstrip("\n").split(",")
table = ""
tnames = ["track_id"]
for t, n in zip(top[1:], field[1:]):
    table = t or table
    tnames.append(f"{table}.{n}")
tracks = pl.read_csv(
    f"{src}/tracks.csv", skip_rows=3, has_header=False, new_columns=tnames, infer_schema_length=10000
)
tracks.write_parquet(f"{out}/tracks.parquet", compression="zstd")

genres = pl.read_csv(f"{src}/genres.csv")
genres.write_parquet(f"{out}/genres.parquet", compression="zstd")
print(f"polars-py ingest (3 CSV -> Parquet): {time.perf_counter() - start:.2f} s "
      f"({features.height} tracks x {features.width - 1} features)")
