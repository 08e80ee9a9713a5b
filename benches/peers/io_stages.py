"""Python peers of the stages that mostly move bytes: ingest, standardize and pca.

Usage:
  io_stages.py ingest FMA_DIR OUT_DIR         the three FMA CSV files -> typed Parquet (polars)
  io_stages.py standardize FEATURES OUT_DIR   z-score and min-max of features.parquet (polars)
  io_stages.py pca ZSCORE OUT_DIR             scikit-learn PCA(155, covariance_eigh), polars I/O

Needs polars (and scikit-learn, numpy for pca). Each command prints one line, `PEER SECONDS`
and what was done, timed from after the imports to the last byte written: reading, parsing or
computing, and writing, which is what the pipeline's stage row measures too (it also hashes
and publishes its outputs).

The work matches the stages': features as float32 in, float32 scalings out (population
standard deviation, a constant column left at 0), the scores as float64 with the components
beside them, dense float matrices uncompressed as the pipeline writes them (snappy gains
nothing on them).
"""
import sys
import time


def ingest(src, out):
    import polars as pl

    # features.csv has three header rows (feature, statistics, number) and a fourth naming
    # track_id; tracks.csv two (table, field) and a third; genres.csv one. Names are joined as
    # the pipeline joins them (`chroma_cens.kurtosis.01`, `track.listens`).
    with open(f"{src}/features.csv") as f:
        rows = [next(f).rstrip("\n").split(",") for _ in range(3)]
    names = ["track_id"] + [".".join(parts) for parts in zip(*(r[1:] for r in rows))]
    features = pl.read_csv(
        f"{src}/features.csv",
        skip_rows=4,
        has_header=False,
        new_columns=names,
        schema_overrides={n: pl.Float32 for n in names[1:]} | {"track_id": pl.Int64},
    )
    features.write_parquet(f"{out}/features.parquet", compression="uncompressed")

    with open(f"{src}/tracks.csv") as f:
        top = next(f).rstrip("\n").split(",")
        field = next(f).rstrip("\n").split(",")
    table = ""
    tnames = ["track_id"]
    for t, n in zip(top[1:], field[1:]):
        table = t or table
        tnames.append(f"{table}.{n}")
    tracks = pl.read_csv(
        f"{src}/tracks.csv",
        skip_rows=3,
        has_header=False,
        new_columns=tnames,
        infer_schema_length=10000,
    )
    tracks.write_parquet(f"{out}/tracks.parquet", compression="zstd")
    genres = pl.read_csv(f"{src}/genres.csv")
    genres.write_parquet(f"{out}/genres.parquet", compression="zstd")
    return f"3 CSV -> Parquet, {features.height} tracks x {features.width - 1} features"


def standardize(features_path, out):
    import polars as pl

    df = pl.read_parquet(features_path)
    names = [c for c in df.columns if c != "track_id"]

    def scaled(offset, scale):
        return df.select(
            "track_id",
            *[
                pl.when(scale(c) > 0)
                .then((pl.col(c).cast(pl.Float64) - offset(c)) / scale(c))
                .otherwise(0.0)
                .cast(pl.Float32)
                .alias(c)
                for c in names
            ],
        )

    col = lambda c: pl.col(c).cast(pl.Float64)  # noqa: E731
    zscore = scaled(lambda c: col(c).mean(), lambda c: col(c).std(ddof=0))
    zscore.write_parquet(f"{out}/zscore.parquet", compression="uncompressed")
    minmax = scaled(lambda c: col(c).min(), lambda c: col(c).max() - col(c).min())
    minmax.write_parquet(f"{out}/minmax.parquet", compression="uncompressed")
    stats = pl.DataFrame(
        {
            "column": names,
            "mean": df.select(col(c).mean() for c in names).row(0),
            "std": df.select(col(c).std(ddof=0) for c in names).row(0),
            "min": df.select(col(c).min() for c in names).row(0),
            "max": df.select(col(c).max() for c in names).row(0),
        }
    )
    stats.write_parquet(f"{out}/stats.parquet", compression="zstd")
    return f"z-score and min-max, {df.height} x {len(names)}, both written"


def pca(zscore_path, out):
    import numpy as np
    import polars as pl
    from sklearn.decomposition import PCA

    df = pl.read_parquet(zscore_path)
    names = [c for c in df.columns if c != "track_id"]
    x = df.select(names).to_numpy().astype(np.float64)
    model = PCA(n_components=155, svd_solver="covariance_eigh")
    scores = model.fit_transform(x)
    columns = [f"pc{i:03}" for i in range(1, scores.shape[1] + 1)]
    table = pl.from_numpy(scores, schema=columns).insert_column(0, df["track_id"])
    table.write_parquet(f"{out}/scores.parquet", compression="uncompressed")
    components = pl.from_numpy(model.components_.T, schema=columns).insert_column(
        0, pl.Series("feature", names)
    )
    components.write_parquet(f"{out}/components.parquet", compression="zstd")
    return f"PCA(155, covariance_eigh) of {x.shape[0]} x {x.shape[1]}, scores written"


STAGES = {"ingest": ("polars-py", ingest), "standardize": ("polars-py", standardize),
          "pca": ("scikit-learn", pca)}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in STAGES:
        sys.exit(__doc__)
    peer, work = STAGES[sys.argv[1]]
    # Imports are not timed (the pipeline's stage seconds exclude its process start too).
    if peer == "scikit-learn":
        import numpy  # noqa: F401
        import sklearn.decomposition  # noqa: F401
    import polars  # noqa: F401

    start = time.perf_counter()
    what = work(sys.argv[2], sys.argv[3])
    print(f"{peer} {time.perf_counter() - start:.3f} {what}")
