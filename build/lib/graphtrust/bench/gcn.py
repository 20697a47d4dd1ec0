"""Benchmark: GCN training on Cora (seconds per epoch, peak memory)."""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from .. import config, datasets
from ..models import GCN
from ..splits import Split
from . import benchmark, peak_rss_mib


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cora", help="dataset name (default: cora)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")


@benchmark("gcn", "GCN training: seconds per epoch (forward + backward + step) and peak RSS", _args)
def run(args: argparse.Namespace) -> dict:
    dev = config.device()
    data = datasets.load(args.dataset)
    split = Split.from_masks(data) if hasattr(data, "train_mask") else None
    x, ei, y = data.x.to(dev), data.edge_index.to(dev), data.y.to(dev)
    train = split.train.to(dev) if split else torch.arange(data.num_nodes, device=dev)
    times = []
    for r in range(args.repeats + 1):  # the first run warms up
        config.seed_everything(r)
        model = GCN(data.num_features, args.hidden, int(data.y.max()) + 1).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.epochs):
            opt.zero_grad()
            loss = F.cross_entropy(model(x, ei)[train], y[train])
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if r:
            times.append((time.perf_counter() - start) / args.epochs)
        print(f"run {r}: {(time.perf_counter() - start) / args.epochs * 1e3:.2f} ms/epoch"
              + (" (warm-up)" if r == 0 else ""))
    times.sort()
    return {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seconds_per_epoch": round(times[len(times) // 2], 6),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
