"""Reads the ingest artifacts with pyarrow (and pandas) and checks types, rows, provenance.

Usage: check_parquet.py OUTPUTS_DIR
"""
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

out = Path(sys.argv[1])
ingest = out / "ingest"

def provenance(path):
    meta = pq.read_metadata(path).metadata or {}
    prov = {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"pipeline.")}
    for key in ["pipeline.stage", "pipeline.kind", "pipeline.key", "pipeline.params",
                "pipeline.inputs", "pipeline.version"]:
        assert key in prov, f"{path}: missing {key}"
    json.loads(prov["pipeline.params"])
    inputs = json.loads(prov["pipeline.inputs"])
    assert len(inputs) == 3 and all(len(i["hash"]) == 64 for i in inputs), inputs
    assert prov["pipeline.stage"] == "ingest"
    return prov

features = pq.read_table(ingest / "features.parquet")
assert features.num_rows == 200, features.num_rows
assert features.num_columns == 519
assert features.schema.field("track_id").type == pa.int64()
assert features.schema.field("mfcc.mean.01").type == pa.float32()
assert features.column_names[1] == "chroma_cens.kurtosis.01"

tracks = pq.read_table(ingest / "tracks.parquet")
assert tracks.num_rows == 200
assert tracks.num_columns == 53
schema = tracks.schema
assert schema.field("track.genres").type == pa.list_(pa.int32()), schema.field("track.genres").type
assert schema.field("track.genres_all").type == pa.list_(pa.int32())
assert schema.field("track.listens").type == pa.int64()
assert pa.types.is_timestamp(schema.field("track.date_created").type)
assert schema.field("artist.bio").type == pa.string()
assert schema.field("set.split").type == pa.string()
df = tracks.to_pandas()
assert set(df["set.split"].unique()) <= {"training", "validation", "test"}
assert any("\n" in b for b in df["artist.bio"].dropna()), "embedded newlines survive"

genres = pq.read_table(ingest / "genres.parquet")
assert genres.num_rows == 163
labels = pq.read_table(ingest / "labels_genres_all.parquet")
assert labels.num_columns == 1 + 164
assert labels.column_names[-1] == "N/A"
assert labels.schema.field("Rock").type == pa.uint8()
sums = labels.drop(["track_id"]).to_pandas().sum(axis=1)
assert (sums >= 1).all(), "every track has a genre or N/A"

for name in ["features", "tracks", "genres", "labels_genres", "labels_genres_all"]:
    provenance(ingest / f"{name}.parquet")
print("pyarrow: all ingest artifacts read back with the expected types and provenance")
