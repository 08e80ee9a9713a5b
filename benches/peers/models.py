"""The Python peers of the pca, lsi and lda stages, timed on the pipeline's own Parquet files.

Usage: models.py OUTPUTS_DIR [--skip-gensim-fit]
Needs pyarrow, scikit-learn and gensim. Prints one line per measurement; timings exclude
reading the files, as the peers' figures in issue 4 do.
"""
import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from gensim.corpora import Dictionary
from gensim.models import LdaModel
from sklearn.decomposition import PCA, TruncatedSVD


def matrix(path):
    table = pq.read_table(path)
    names = [c for c in table.column_names if c != "track_id"]
    return names, np.column_stack([table.column(c).to_numpy() for c in names]).astype(np.float64)


def timed(label, work):
    start = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - start:.2f} s", flush=True)
    return result


out = sys.argv[1]
_, x = matrix(f"{out}/standardize/zscore.parquet")
full = timed("scikit-learn PCA, full spectrum", lambda: PCA().fit(x))
timed("scikit-learn PCA(155).fit_transform", lambda: PCA(n_components=155).fit_transform(x))
n90 = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), 0.9) + 1)
print(f"scikit-learn components for 90%: {n90}")

names, labels = matrix(f"{out}/ingest/labels_genres_all.parquet")
timed(
    "scikit-learn TruncatedSVD (all but one component)",
    lambda: TruncatedSVD(n_components=labels.shape[1] - 1, algorithm="arpack").fit(labels),
)

if "--skip-gensim-fit" not in sys.argv:
    docs = [[names[j] for j in np.flatnonzero(row)] for row in labels > 0.5]
    dictionary = Dictionary(docs)
    corpus = [dictionary.doc2bow(doc) for doc in docs]
    lda = timed(
        "gensim LdaModel, 70 topics, 10 passes",
        lambda: LdaModel(corpus, id2word=dictionary, num_topics=70, passes=10, random_state=0),
    )
    print(f"gensim per-word bound, full corpus: {lda.log_perplexity(corpus):.4f}")
ours = json.load(open(f"{out}/lda/metrics.json"))["per_word_bound"]
print(f"pipeline lda per-word bound, full corpus: {ours:.4f}")
