"""Benchmark: exact Meta-Self (and A-Meta-Self) seconds per flip on a Metattack graph.

Besides the time it reports a memory-traffic floor: a greedy attack that writes the
``N × N`` score matrix and reads it back for the argmax moves ``2 · 4N²`` bytes per flip;
divided by the bandwidth measured here (a large tensor copy) that is the least time such
a flip can take on this machine. Ours scans the upper triangle in blocks of rows
(``block_rows``; four blocks for Cora-sized graphs, A-Meta one whole matrix there) and never holds the whole matrix on
larger ones, so peak memory grows as ``N·(h + n_L)``, not ``N²``.

``--dataset sbm --nodes 19717`` (PubMed's size: 44,324 edges, 500 features, 3 classes)
and ``--nodes 169343`` (ogbn-arxiv's) run on seeded synthetic graphs.
"""

from __future__ import annotations

import argparse
import time

import torch

from .. import config, datasets
from ..splits import stratified_split
from ..structure import attack, self_training_labels
from ..structure.attacks import block_rows
from ..structure.metagradient import WHOLE_ENTRIES
from . import benchmark, peak_rss_mib

#: seeded synthetic graphs of real graphs' sizes (``--dataset sbm --nodes N``)
SBM_SIZES = {
    19_717: dict(name="PubMed", num_edges=44_324, num_features=500, num_classes=3, max_degree=171),
    169_343: dict(name="ogbn-arxiv", num_edges=1_166_243, num_features=128, num_classes=40, max_degree=13_000),
}


def sbm_graph(nodes: int):
    """A seeded SBM with the size of ``SBM_SIZES[nodes]`` (else PubMed's degree and features)."""
    s = SBM_SIZES.get(nodes, dict(num_edges=int(2.25 * nodes), num_features=500, num_classes=3,
                                  max_degree=max(20, nodes // 100)))
    return datasets.load("sbm", num_nodes=nodes, num_classes=s["num_classes"], avg_degree=2 * s["num_edges"] / nodes,
                         num_features=s["num_features"], degree_exponent=2.5, max_degree=s["max_degree"],
                         homophily=0.7, feature_signal=0.5, seed=0)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="cora_ml", help="a dataset name, or sbm (with --nodes)")
    p.add_argument("--nodes", type=int, default=19_717, help="sbm only: nodes (19717: PubMed's size, 169343: arxiv's)")
    p.add_argument("--train", type=float, default=0.1, help="labelled fraction of the nodes")
    p.add_argument("--block-rows", type=int, default=None, help="rows of the score scanned at once (default: automatic)")
    p.add_argument("--no-approx", action="store_true", help="time exact Meta-Self only")
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
    if args.dataset == "sbm":
        data = sbm_graph(args.nodes)
        name = f"sbm, {SBM_SIZES.get(args.nodes, {}).get('name', 'custom')} size"
    else:
        data, name = datasets.load(args.dataset, lcc=True), f"{args.dataset} (LCC)"
    split = stratified_split(data.y, args.train, 0.1, seed=0)
    n = data.num_nodes
    rows = args.block_rows or block_rows(n, dev)
    out: dict = {"dataset": name, "nodes": n, "edges": data.edge_index.size(1) // 2, "features": data.num_features,
                 "labelled": int(split.train.numel()), "steps": args.steps, "block_rows": rows,
                 "a_meta_whole_matrix": args.block_rows is None and n * n <= WHOLE_ENTRIES}
    labels = self_training_labels(data, split, device=dev)  # once; the timings exclude it
    methods = (("meta-self", args.flips),) + (() if args.no_approx else (("a-meta-self", args.approx_flips or args.flips),))
    for method, flips in methods:
        kw = dict(steps=args.steps, labels=labels, device=dev, show_progress=False, block_rows=args.block_rows)
        attack(data, split, method, 1, **kw)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        attack(data, split, method, flips, **kw)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        spf = (time.perf_counter() - t) / flips
        key = method.replace("-", "_")
        out[f"{key}_seconds_per_flip"] = round(spf, 4)
        out[f"{key}_flips_per_second"] = round(1 / spf, 2)
        print(f"{method}: {spf:.3f} s per flip ({flips} flips, T = {args.steps})")
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)  # before the bandwidth probe's 512 MiB
    if dev.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
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
    out.update(
        seconds_per_flip=out["meta_self_seconds_per_flip"],
        bandwidth_gbs=round(bw, 1),
        nxn_mib=round(4 * n * n / 2**20, 1),
        floor_seconds_per_flip=round(floor, 4),
    )
    print(f"floor (write + read one N x N score at {bw:.1f} GB/s): {floor * 1e3:.1f} ms per flip; "
          f"peak RSS {out['peak_rss_mib']:.0f} MiB")
    return out
