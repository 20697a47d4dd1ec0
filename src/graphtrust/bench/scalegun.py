"""Benchmark: ScaleGUN's lazy embedding update against exact re-propagation.

Builds a seeded synthetic graph the size of ogbn-arxiv (169,343 nodes, 1,166,243 edges,
128 features, 40 classes, capped power-law degrees) or ogbn-products (2,449,029 nodes,
61,859,140 edges, 100 features, 47 classes), initialises the lazy propagation (SGC
weights, L = 2, β = ½) and times one batch of uniformly random edge removals (embedding
update) against exact two-hop re-propagation of the same graph; then one certified
Newton step of a one-vs-rest logistic model on a training set (model update).
"""

from __future__ import annotations

import argparse
import time

import torch

from .. import datasets
from ..unlearning import Graph, LazyPropagation, exact_embedding
from ..unlearning.certified import CertifiedLinear, preprocess
from . import benchmark, peak_rss_mib

SIZES = {
    "arxiv": dict(num_nodes=169_343, num_edges=1_166_243, num_features=128, num_classes=40, max_degree=13_000,
                  batch=100, train=0.54),
    "products": dict(num_nodes=2_449_029, num_edges=61_859_140, num_features=100, num_classes=47,
                     max_degree=17_000, batch=500, train=0.08),
    "small": dict(num_nodes=20_000, num_edges=140_000, num_features=64, num_classes=10, max_degree=2_000,
                  batch=100, train=0.5),
}


def synthetic_graph(size: str):
    """The seeded OGB-sized SBM graph of ``SIZES[size]`` (also the contention benchmark's)."""
    s = SIZES[size]
    return datasets.load("sbm", num_nodes=s["num_nodes"], num_classes=s["num_classes"],
                         avg_degree=2 * s["num_edges"] / s["num_nodes"], num_features=s["num_features"],
                         degree_exponent=2.5, max_degree=s["max_degree"], homophily=0.7, feature_signal=0.5, seed=0)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=sorted(SIZES), default="arxiv")
    p.add_argument("--batch", type=int, default=None, help="edges per removal batch (default per size)")
    p.add_argument("--rmax", type=float, default=1e-7, help="r_max relative to the mean column L1 norm of X")
    p.add_argument("--r-max", type=float, default=None, dest="r_max_abs",
                   help="absolute r_max (overrides --rmax; the chapter's laziness sweep certifies 100-edge batches "
                        "lazily at arxiv size with 1e-6, --alpha 1 --lam 1e-2)")
    p.add_argument("--alpha", type=float, default=0.1, help="noise scale of the certified model")
    p.add_argument("--lam", type=float, default=1e-4, help="L2 regularisation of the certified model")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--no-model", action="store_true", help="skip the model update")


@benchmark("scalegun", "ScaleGUN: lazy embedding update vs exact re-propagation on an OGB-sized graph", _args)
def run(args: argparse.Namespace) -> dict:
    s = SIZES[args.size]
    dt = getattr(torch, args.dtype)
    t = time.perf_counter()
    data = synthetic_graph(args.size)
    build = time.perf_counter() - t
    x = preprocess(data.x).to(dt)
    if args.r_max_abs is not None and not args.r_max_abs > 0:
        raise SystemExit(f"--r-max must be positive, got {args.r_max_abs}")
    r_max = args.r_max_abs if args.r_max_abs is not None else args.rmax * float(x.abs().sum(0).mean())
    t = time.perf_counter()
    g = Graph(data.edge_index, data.num_nodes)
    lp = LazyPropagation(g, x, r_max=r_max)
    init = time.perf_counter() - t
    batch = args.batch or s["batch"]
    ei = g.edge_index()
    ei = ei[:, ei[0] < ei[1]]
    gen = torch.Generator().manual_seed(1)
    edges = ei[:, torch.randperm(ei.size(1), generator=gen)[: 2 * batch]].t()
    lp.remove_edges(edges[:batch])  # warm-up batch (first-call allocations)
    z_old = lp.embedding
    t = time.perf_counter()
    lp.remove_edges(edges[batch:])
    update = time.perf_counter() - t
    t = time.perf_counter()
    exact = exact_embedding(g, x)
    reprop = time.perf_counter() - t
    err = float((exact - lp.embedding).abs().max())
    out = {
        "size": args.size, "nodes": data.num_nodes, "edges": g.num_edges, "features": x.size(1),
        "max_degree": int(g.deg.max()) - 1, "batch": batch, "dtype": args.dtype, "r_max": r_max,
        "build_seconds": round(build, 2), "init_seconds": round(init, 3), "update_seconds": round(update, 4),
        "repropagation_seconds": round(reprop, 3), "speedup": round(reprop / update, 1),
        "max_abs_error": err, "error_bound_max": float(lp.error_bound().max()),
        "state_mib": round(sum(t.numel() * t.element_size() for t in [*lp.q, *lp.r, g.row, g.col, g.keys, g.indptr,
                                                                      g.alive, g.deg]) / 2**20, 1),
    }
    print(f"graph built in {build:.1f} s; init {init:.2f} s; update of {batch} edges {update * 1e3:.1f} ms; "
          f"exact re-propagation {reprop:.2f} s ({out['speedup']}x)")
    if not args.no_model:
        n_train = int(s["train"] * data.num_nodes)
        train = torch.randperm(data.num_nodes, generator=gen)[:n_train]
        model = CertifiedLinear(s["num_classes"], lam=args.lam, alpha=args.alpha, max_iter=50)
        model.fit(z_old[train].double(), data.y[train])

        def flush():
            lp.flush()
            return lp.embedding[train], lp.error_bound().double(), lp.frobenius_bound()

        t = time.perf_counter()
        rec = model.remove(z_old[train], data.y[train], lp.embedding[train], data.y[train],
                           lp.error_bound().double(), flush=flush, frobenius=lp.frobenius_bound())
        out["model_update_seconds"] = round(time.perf_counter() - t, 3)
        out.update(alpha=args.alpha, lam=args.lam, model_flushed=rec.flushed, model_retrained=rec.retrained,
                   model_causes=rec.causes, model_bound_over_budget=round(rec.model_total / rec.budget, 4))
        t = time.perf_counter()
        CertifiedLinear(s["num_classes"], lam=args.lam, alpha=args.alpha, max_iter=50).fit(exact[train].double(),
                                                                                           data.y[train])
        out["retrain_seconds"] = round(time.perf_counter() - t, 3)
        request = update + out["model_update_seconds"]
        reference = reprop + out["retrain_seconds"]
        out.update(request_seconds=round(request, 3), reference_seconds=round(reference, 3),
                   request_speedup=round(reference / request, 2))
        print(f"model update (Newton step + bound, {s['num_classes']} classes, {n_train} rows): "
              f"{out['model_update_seconds']:.2f} s ({'flushed' if rec.flushed else 'no flush'}, "
              f"{'retrained' if rec.retrained else 'no retrain'}); retraining {out['retrain_seconds']:.2f} s")
        print(f"whole request (embedding + model) {request:.2f} s vs re-propagation + retraining {reference:.2f} s "
              f"({out['request_speedup']}x)")
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out
