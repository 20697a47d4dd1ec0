"""The ScaleGUN chapter's experiment on the harness (:mod:`graphtrust.experiment`).

``scalegun`` holds every measurement the chapter shows, as cells with a ``part`` axis:

* ``utility`` — dataset × request kind × method: a sequence of removal requests
  (:func:`~.experiments.run_sequence`); one record per step (step 0 is the model before
  any request) with the accuracy, the seconds, the certificate's parts and what the
  mechanism did (flush, retrain and why);
* ``bounds`` — Cora: single-edge ScaleGUN removals, per step the true residual on the
  exact data, our data-dependent bound, CGU's worst case and the budget;
* ``rmax`` — Cora × relative ``r_max``: one batch edge removal, its pushes, time,
  largest entry error and the model-level approximation term;
* ``lazy`` — dataset × α × absolute ``r_max`` × method: sequences where residues stay
  unpushed, so the approximation term is not zero;
* ``lazy_scale`` — the same on the profile's synthetic graph with 100-edge batches:
  ScaleGUN over α × ``r_max``, retraining over α only (it never reads ``r_max``);
* ``efficacy`` — Cora: the replay and membership tests, one record per method;
* ``cost`` — graph (the profile's synthetic graphs and Cora): one batch of edge
  removals against exact re-propagation and retraining.

The settings (λ, α, ε, δ, relative ``r_max``) come from the profile's sizes and are the
same in every cell; the run's provenance says which profile made it.

Run the full grid in parts, one thread each, and merge::

    GRAPHTRUST_PROFILE=full OMP_NUM_THREADS=1 python -m graphtrust.experiments scalegun \\
        --out runs/sg_a.jsonl --only part=utility dataset=cora
"""

from __future__ import annotations

from typing import Any

from .. import config
from ..experiment import Experiment, Grid, register
from .experiments import (
    Problem,
    bounds_trace,
    cost_on,
    efficacy,
    load_problem,
    requests,
    rmax_tradeoff,
    run_sequence,
)

__all__ = ["SCALEGUN", "grid", "measure", "settings"]


def settings(sz: config.Sizes) -> dict[str, float]:
    """The certificate's and propagation's settings shared by every cell."""
    return dict(r_max_rel=sz.r_max_rel, lam=sz.lam, alpha=sz.alpha, eps=sz.eps, delta=sz.delta)


def grid(sz: config.Sizes) -> Grid:
    """The cells of the profile: see the module docstring."""
    lz, ls = sz.lazy, sz.lazy_scale
    graphs = (*sz.synthetic, "cora")
    return (Grid.product(part=("utility",), dataset=sz.datasets, kind=sz.kinds, method=sz.methods)
            | Grid.product(part=("bounds",), dataset=("cora",))
            | Grid.product(part=("rmax",), dataset=("cora",), r_max_rel=sz.rmax_grid)
            | Grid.product(part=("lazy",), dataset=lz["datasets"], alpha=lz["alphas"], r_max=lz["r_max"],
                           method=lz["methods"])
            | Grid.product(part=("lazy_scale",), dataset=ls["datasets"], alpha=ls["alphas"], r_max=ls["r_max"],
                           method=tuple(m for m in ls["methods"] if m != "retrain"))
            | Grid.product(part=("lazy_scale",), dataset=ls["datasets"], alpha=ls["alphas"],
                           method=tuple(m for m in ls["methods"] if m == "retrain"))
            | Grid.product(part=("efficacy",), dataset=("cora",))
            | Grid.product(part=("cost",), dataset=graphs))


def _problem(ctx: dict[str, Any], name: str) -> Problem:
    sz = ctx["sizes"]
    key = ("problem", name)
    if key not in ctx:
        ctx[key] = load_problem("sbm", **sz.synthetic[name]) if name in sz.synthetic else load_problem(name)
    return ctx[key]


def _steps(seq: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per step of a sequence; step 0 is the model before any request."""
    out = [{"step": 0, "removed": 0, "accuracy": seq["initial_accuracy"], "setup_seconds": seq["setup_seconds"]}]
    removed = 0
    for i, s in enumerate(seq["steps"], 1):
        removed += s["items"]
        rec = {k: v for k, v in s.items() if k not in ("kind", "causes")}
        out.append({"step": i, "removed": removed, **rec, "causes": "; ".join(s["causes"])})
    return out


def measure(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one cell (see the module docstring)."""
    sz = ctx["sizes"]
    kw = settings(sz)
    part, p = cell["part"], _problem(ctx, cell["dataset"])
    if part == "utility":
        kind = cell["kind"]
        reqs = requests(p, kind, sz.requests, sz.batch[kind])
        return _steps(run_sequence(p, cell["method"], kind, reqs, **kw))
    if part == "bounds":
        b = bounds_trace(p, requests(p, "edge", sz.bound_requests, 1, seed=2), **kw)
        return [{"step": i + 1, **{k: v[i] for k, v in b.items()}} for i in range(len(b["true"]))]
    if part == "rmax":
        edges = requests(p, "edge", 1, sz.batch["edge"], seed=3)[0]
        (row,) = rmax_tradeoff(p, (cell["r_max_rel"],), edges, **{k: v for k, v in kw.items() if k != "r_max_rel"})
        return [{k: v for k, v in row.items() if k != "r_max_rel"}]
    if part in ("lazy", "lazy_scale"):
        lz = sz.lazy if part == "lazy" else sz.lazy_scale
        seq = run_sequence(p, cell["method"], "edge", requests(p, "edge", lz["requests"], lz["batch"]),
                           r_max=cell.get("r_max"), alpha=cell["alpha"], lam=sz.lam, eps=sz.eps, delta=sz.delta)
        return _steps(seq)
    if part == "efficacy":
        e = efficacy(p, nodes=sz.efficacy_nodes, **kw)
        common = {"deleted": e["deleted"], "member_rate_test_nodes": e["member_rate_test_nodes"]}
        return [{"method": m, **common, **e[m]} for m in ("scalegun", "cgu", "retrain")]
    if part == "cost":
        c = cost_on(p, sz.cost_batch, **kw)
        return [{**c, "causes": "; ".join(c["causes"])}]
    raise ValueError(f"scalegun: unknown part {part!r}")


SCALEGUN = register(Experiment("scalegun", grid, measure, chapter="scalegun"))
