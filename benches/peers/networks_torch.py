"""The PyTorch peer of the networks: one epoch of the autoencoder and of the classifier, the
same layer sizes, batch, optimiser (Adam, lr 1e-3, eps 1e-7) and dropout as the pipeline's
defaults, on the pipeline's own min-max features and genre labels.

Usage: networks_torch.py OUTPUTS_DIR [THREADS]
Needs torch (its CPU wheel is large, so CI does not install it:
  pip install torch --index-url https://download.pytorch.org/whl/cpu), numpy and pyarrow.
Runs with torch.set_num_threads(THREADS, default 1) and flush-denormal on, as issue 15 asks;
prints seconds per epoch over the 80% of tracks the pipeline trains on.
"""
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

out = sys.argv[1]
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
torch.set_flush_denormal(True)
torch.manual_seed(42)


def matrix(path):
    table = pq.read_table(path)
    names = [c for c in table.column_names if c != "track_id"]
    ids = table.column("track_id").to_numpy()
    return ids, np.column_stack([table.column(c).to_numpy() for c in names]).astype(np.float32)


ids, x = matrix(f"{out}/standardize/minmax.parquet")
label_ids, y = matrix(f"{out}/ingest/labels_genres.parquet")
row = {t: i for i, t in enumerate(label_ids)}
keep = [i for i, t in enumerate(ids) if t in row]
x, y = torch.from_numpy(x[keep]), torch.from_numpy(y[[row[ids[i]] for i in keep]])
train = torch.randperm(len(x))[: int(len(x) * 0.8)]


def mlp(sizes, dropout):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def epoch(model, loss_fn, target):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    order = train[torch.randperm(len(train))]
    start = time.perf_counter()
    for i in range(0, len(order), 32):
        batch = order[i : i + 32]
        opt.zero_grad()
        loss = loss_fn(model(x[batch]), target[batch])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


classifier = mlp([x.shape[1], 512, 512, 256, y.shape[1]], 0.2)
print(f"PyTorch classifier epoch: {epoch(classifier, nn.BCEWithLogitsLoss(), y):.2f} s "
      f"({len(train)} tracks, {torch.get_num_threads()} threads)")
# As the pipeline's: one stack, ReLU after every layer but the last (the 164-wide code
# included), binary cross-entropy on the logits of the reconstruction, no dropout.
autoencoder = mlp([x.shape[1], 512, 512, 256, 164, 256, 512, 512, x.shape[1]], 0.0)
print(f"PyTorch autoencoder epoch: {epoch(autoencoder, nn.BCEWithLogitsLoss(), x):.2f} s "
      f"({len(train)} tracks, {torch.get_num_threads()} threads)")
