"""Checks the pipeline's PCA, LSI and LDA against the trusted Python implementations on the
same Parquet files: scikit-learn's PCA, numpy's SVD and gensim's LDA bound.

Usage: check_models.py OUTPUTS_DIR. Exits non-zero with a message on the first mismatch.
"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq
from gensim.corpora import Dictionary
from gensim.models import LdaModel
from sklearn.decomposition import PCA


def matrix(path, skip):
    table = pq.read_table(path)
    names = [c for c in table.column_names if c not in skip]
    return names, np.column_stack([table.column(c).to_numpy() for c in names]).astype(np.float64)


def check(condition, message):
    if not condition:
        sys.exit(message)


out = sys.argv[1]
found = {}

# PCA: explained variance ratios, the count for the threshold, and the scores (up to sign).
_, x = matrix(f"{out}/standardize/zscore.parquet", {"track_id"})
pca_metrics = json.load(open(f"{out}/pca/metrics.json"))
k = pca_metrics["n_components"]
full = PCA(svd_solver="full").fit(x)
ratios = pq.read_table(f"{out}/pca/explained_variance.parquet").column("ratio").to_numpy()
diff = np.max(np.abs(ratios - full.explained_variance_ratio_)) / full.explained_variance_ratio_[0]
check(diff < 1e-6, f"PCA explained variance ratios differ from scikit-learn's by {diff:.2e}")
found["pca_ratios"] = diff
threshold = pca_metrics["threshold"]
expected = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), threshold - 1e-12) + 1)
check(
    pca_metrics["components_for_threshold"] == expected,
    f"components for {threshold}: {pca_metrics['components_for_threshold']}, scikit-learn {expected}",
)
# "full": the exact solver (on small inputs "auto" may pick the approximate randomized one).
reference = PCA(n_components=k, svd_solver="full").fit_transform(x)
_, ours = matrix(f"{out}/pca/scores.parquet", {"track_id"})
signs = np.sign(np.sum(ours * reference, axis=0))
diff = np.max(np.abs(ours - reference * signs)) / np.max(np.abs(reference))
check(diff < 1e-6, f"PCA scores differ from scikit-learn's by {diff:.2e} (relative)")
found["pca_scores"] = diff

# LSI: singular values of the binary track x genre matrix.
_, labels = matrix(f"{out}/ingest/labels_genres_all.parquet", {"track_id"})
singular = pq.read_table(f"{out}/lsi/singular_values.parquet").column("singular_value").to_numpy()
reference = np.linalg.svd(labels, compute_uv=False)
n = min(len(singular), len(reference))
diff = np.max(np.abs(singular[:n] - reference[:n])) / reference[0]
check(diff < 1e-6, f"LSI singular values differ from numpy's by {diff:.2e}")
found["lsi_singular_values"] = diff

# LDA: gensim's own bound of the pipeline's model (lambda.parquet) on the same corpus.
words, lam = matrix(f"{out}/lda/lambda.parquet", {"topic"})
names, present = matrix(f"{out}/ingest/labels_genres_all.parquet", {"track_id"})
docs = [[names[j] for j in np.flatnonzero(row)] for row in present > 0.5]
dictionary = Dictionary([words])
corpus = [dictionary.doc2bow(doc) for doc in docs]
placed = np.zeros_like(lam)
for i, word in enumerate(words):
    placed[:, dictionary.token2id[word]] = lam[:, i]
model = LdaModel(num_topics=lam.shape[0], id2word=dictionary, dtype=np.float64, random_state=0)
model.state.sstats[...] = placed - model.eta
model.sync_state()
# The pipeline's own gammas, rebuilt from the topic distributions: at gensim's fixed point a
# document's gammas sum to K alpha + its word count.
_, theta = matrix(f"{out}/lda/doc_topics.parquet", {"track_id"})
lengths = np.array([sum(c for _, c in doc) for doc in corpus], dtype=np.float64)
gammas = theta * (lam.shape[0] * model.alpha[0] + lengths)[:, None]
# gensim indexes one (1 x K) row per document, as its own inference returns them.
gensim_bound = model.bound(corpus, gamma=gammas[:, None, :]) / lengths.sum()
ours = json.load(open(f"{out}/lda/metrics.json"))["per_word_bound"]
check(
    abs(gensim_bound - ours) < 1e-4,
    f"LDA per-word bound {ours:.6f}, gensim's bound of the same model and gammas {gensim_bound:.6f}",
)
_, weights = matrix(f"{out}/lda/topics.parquet", {"topic"})
check(np.allclose(weights, lam / lam.sum(axis=1, keepdims=True)), "LDA topics are not lambda normalised")
found["lda_bound"] = ours
found["gensim_bound_of_the_same_model"] = gensim_bound
print(json.dumps({key: float(value) for key, value in found.items()}))
