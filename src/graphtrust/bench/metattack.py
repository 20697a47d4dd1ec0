"""Benchmark: exact Meta-Self (and A-Meta-Self) seconds per flip on a Metattack graph.

Besides the time it reports a memory-traffic floor: any exact greedy attack must at least
write the ``N × N`` score matrix and read it back for the argmax, ``2 · 4N²`` bytes per
flip; divided by the bandwidth measured here (a large tensor copy) that is the least time
a flip can take on this machine. ``passes`` counts the ``N × N`` float32 passes our
implementation makes per flip (see the chapter).
"""

from __future__ import annotations

import argparse
import time

import torch

from .. import config, datasets
from ..splits import stratified_split
from ..structure import attack, self_training_labels
from . import benchmark, peak_rss_mib

# N×N float32 reads+writes of one exact flip in our implementation: degrees and nonzero
# of A (2), the rank-4h product (1), the labelled-row block and its transpose (6), the
# degree chain (8), the score (5), masks, where and argmax (~8).
PASSES_PER_FLIP = 30


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cora_ml")
    p.add_argument("--flips", type=int, default=20, help="flips timed per attack")
    p.add_argument("--steps", type=int, default=100, help="unrolled training steps T")
    p.add_argument("--approx-flips", type=int, default=None, help="flips for A-Meta-Self (default: --flips)")
    p.add_argument("--reference", action="store_true",
                   help="also time one meta-gradient of the textbook dense-autograd implementation")


def bandwidth_gbs(dev: torch.device) -> float:
    """Measured device-memory bandwidth (GB/s) of a 256 MiB copy, read + write."""
    a = torch.empty(64 * 2**20, dtype=torch.float32, device=dev).fill_(1.0)  # 256 MiB
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        b.copy_(a)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best / 1e9  # read + write


@benchmark("metattack", "Metattack: exact Meta-Self and A-Meta-Self seconds per flip, memory floor", _args)
def run(args: argparse.Namespace) -> dict:
    dev = config.device()
    data = datasets.load(args.dataset, lcc=True)
    split = stratified_split(data.y, 0.1, 0.1, seed=0)
    n = data.num_nodes
    out: dict = {"dataset": f"{args.dataset} (LCC)", "nodes": n, "steps": args.steps}
    labels = self_training_labels(data, split, device=dev)  # once; the timings exclude it
    for method, flips in (("meta-self", args.flips), ("a-meta-self", args.approx_flips or args.flips)):
        attack(data, split, method, 1, steps=args.steps, labels=labels, device=dev, show_progress=False)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        attack(data, split, method, flips, steps=args.steps, labels=labels, device=dev, show_progress=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        spf = (time.perf_counter() - t) / flips
        key = method.replace("-", "_")
        out[f"{key}_seconds_per_flip"] = round(spf, 4)
        out[f"{key}_flips_per_second"] = round(1 / spf, 2)
        print(f"{method}: {spf:.3f} s per flip ({flips} flips, T = {args.steps})")
    if args.reference:
        from ..graph import to_dense
        from ..structure.metagradient import MetaProblem, reference_meta_gradient

        prob = MetaProblem(x=data.x.to(dev), targets=labels.to(dev), idx_train=split.train.to(dev),
                           idx_unlabeled=split.unlabelled.to(dev), num_classes=int(data.y.max()) + 1,
                           steps=args.steps)
        adj = to_dense(data.edge_index.to(dev), n)
        t = time.perf_counter()
        reference_meta_gradient(adj, prob)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out["reference_seconds_per_meta_gradient"] = round(time.perf_counter() - t, 2)
        print(f"textbook dense autograd: {out['reference_seconds_per_meta_gradient']} s per meta-gradient")
    bw = bandwidth_gbs(dev)
    floor = 2 * 4 * n * n / (bw * 1e9)
    ours = PASSES_PER_FLIP * 4 * n * n / (bw * 1e9)
    out.update(
        seconds_per_flip=out["meta_self_seconds_per_flip"],
        bandwidth_gbs=round(bw, 1),
        nxn_mib=round(4 * n * n / 2**20, 1),
        floor_seconds_per_flip=round(floor, 4),
        passes_per_flip=PASSES_PER_FLIP,
        traffic_seconds_per_flip=round(ours, 4),
        peak_rss_mib=round(peak_rss_mib(), 1),
    )
    if dev.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(f"floor (write + read one N x N score at {bw:.1f} GB/s): {floor * 1e3:.1f} ms per flip; "
          f"our ~{PASSES_PER_FLIP} passes: {ours * 1e3:.1f} ms")
    return out
