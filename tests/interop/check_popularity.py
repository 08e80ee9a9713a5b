"""Checks the popularity stage against scikit-learn on the same Parquet files.

- Ridge on the audio features, standardised on the training set, with the penalty the stage
  chose: the same test predictions (to 1e-6).
- R², MAE, Spearman and the top-10% ROC-AUC recomputed from the stage's predictions with
  scikit-learn and scipy (to 1e-9).
- Gradient-boosted trees: scikit-learn's HistGradientBoostingRegressor (same defaults, its round
  picked on the same validation set) on the same features and split gives a test R² within 0.05 of the stage's (audio, and audio with the metadata
  table's numeric columns). A stage much better than the reference on audio alone would mean
  a leak.

Usage: check_popularity.py OUTPUTS_DIR.
"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler


def check(condition, message):
    if not condition:
        sys.exit(message)


out = sys.argv[1]
metrics = json.load(open(f"{out}/popularity/metrics.json"))
models = metrics["models"]
predictions = pq.read_table(f"{out}/popularity/predictions.parquet").to_pandas()
ids = predictions["track_id"].to_numpy()
split = predictions["set.split"].to_numpy()
target = predictions["target"].to_numpy()
listens = predictions["listens"].to_numpy()

tracks = pq.read_table(f"{out}/ingest/tracks.parquet", columns=["track_id", "track.listens", "set.split"]).to_pandas().set_index("track_id")
check(np.allclose(np.log1p(tracks.loc[ids, "track.listens"].to_numpy(dtype=float)), target), "target is not log1p(track.listens)")
check((tracks.loc[ids, "set.split"].to_numpy() == split).all(), "sets differ from set.split")

train, val, test = (split == "training"), (split == "validation"), (split == "test")

# Metrics recomputed from the stage's own predictions.
top = listens[test] >= np.sort(listens[test])[::-1][int(np.ceil(test.sum() * 0.1)) - 1]
for name, m in models.items():
    pred = predictions[name].to_numpy()
    expected = {
        "r2": r2_score(target[test], pred[test]),
        "mae": mean_absolute_error(target[test], pred[test]),
    }
    if np.ptp(pred[test]) > 0:
        expected["spearman"] = spearmanr(pred[test], target[test]).correlation
        expected["top10_auc"] = roc_auc_score(top, pred[test])
    for key, value in expected.items():
        check(abs(m[key] - value) < 1e-9, f"{name} {key}: stage {m[key]}, scikit-learn/scipy {value}")

# Ridge on audio, the stage's penalty.
audio = pq.read_table(f"{out}/standardize/zscore.parquet").to_pandas().set_index("track_id").loc[ids]
x = audio.to_numpy(dtype=np.float64)
scaler = StandardScaler().fit(x[train])
ridge = Ridge(alpha=models["audio/ridge"]["alpha"]).fit(scaler.transform(x[train]), target[train])
ours = predictions["audio/ridge"].to_numpy()[test]
theirs = ridge.predict(scaler.transform(x[test]))
diff = np.max(np.abs(ours - theirs))
check(diff < 1e-6, f"ridge predictions differ from scikit-learn's by {diff:.2e}")

# Trees against HistGradientBoostingRegressor, on audio and on audio + numeric metadata.
metadata = pq.read_table(f"{out}/track_metadata/table.parquet").to_pandas().set_index("track_id")
for column in metadata.columns:
    if metadata[column].dtype.kind == "m":
        metadata[column] = metadata[column].dt.total_seconds() / 86400
engagement = set(metrics["engagement_columns"])
numeric = [c for c in metadata.columns if c not in engagement and metadata[c].dtype.kind in "biuf"]
meta = metadata.reindex(ids)[numeric].to_numpy(dtype=np.float64)
found = {}
for name, features in [("audio", x), ("audio+metadata", np.hstack([x, meta]))]:
    # The stage stops on the validation set; so does the reference: the round of least
    # validation error among its first 200.
    reference = HistGradientBoostingRegressor(max_iter=200, early_stopping=False, random_state=0)
    reference.fit(features[train], target[train])
    errors = [np.mean((p - target[val]) ** 2) for p in reference.staged_predict(features[val])]
    best = int(np.argmin(errors))
    staged = reference.staged_predict(features[test])
    test_prediction = next(p for i, p in enumerate(staged) if i == best)
    r2_ref = r2_score(target[test], test_prediction)
    r2_ours = models[f"{name}/trees"]["r2"]
    found[name] = (r2_ours, r2_ref)
    check(abs(r2_ours - r2_ref) < 0.05, f"{name}: trees R² {r2_ours:.4f}, HistGradientBoostingRegressor {r2_ref:.4f}")
print(json.dumps({"ridge_max_diff": diff, "trees_r2_vs_reference": found}))
