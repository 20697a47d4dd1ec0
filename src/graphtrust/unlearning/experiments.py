"""Removal sequences, costs, bounds and efficacy: what the ScaleGUN chapter measures.

:class:`Unlearner` runs one method on one graph through a sequence of removal requests:

* ``"scalegun"`` — lazy local propagation + certified Newton step, the approximation
  term in the certificate (flushing the residues when that term alone would exceed the
  budget);
* ``"cgu"`` — exact re-propagation of the whole graph + certified Newton step (CGU);
* ``"retrain"`` — exact re-propagation + training from scratch (the reference).

Every request records the test accuracy, the time split into embedding update and model
update, the certificate's parts and whether the model was retrained. The chapter's
experiment (:mod:`.cells`, ``scalegun`` on the harness) measures its cells with these.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from .. import datasets
from .certified import CertifiedLinear, preprocess
from .propagation import SGC2, Graph, LazyPropagation, exact_embedding

__all__ = ["Unlearner", "Problem", "load_problem", "requests", "run_sequence", "cgu_edge_worst_case", "bounds_trace",
           "rmax_tradeoff", "efficacy", "cost_on"]

METHODS = ("scalegun", "cgu", "retrain")
KINDS = ("edge", "node", "feature")


@dataclass
class Problem:
    """A node-classification problem ready for unlearning: preprocessed ``x: (N, F)``,
    edges, labels and index splits."""

    name: str
    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1


def load_problem(name: str, **options: Any) -> Problem:
    """Cora/Citeseer with Planetoid's ``full`` split (1,208/500/1,000 and 1,827/500/1,000),
    or ``sbm`` with the given options and a 50/20/30 random split."""
    if name in ("cora", "citeseer"):
        d = datasets.load(name, split="full")
        idx = [m.nonzero().view(-1) for m in (d.train_mask, d.val_mask, d.test_mask)]
    else:
        d = datasets.load(name, **options)
        perm = torch.randperm(d.num_nodes, generator=torch.Generator().manual_seed(0))
        a, b = int(0.5 * d.num_nodes), int(0.7 * d.num_nodes)
        idx = [perm[:a].sort().values, perm[a:b].sort().values, perm[b:].sort().values]
    return Problem(name, preprocess(d.x), d.edge_index, d.y, *idx)


def requests(problem: Problem, kind: str, count: int, batch: int, seed: int = 0) -> list[torch.Tensor]:
    """``count`` removal requests of ``batch`` items each, drawn uniformly at random.

    Edges: undirected edges ``(batch, 2)`` (distinct, never the same twice); nodes and
    features: training nodes ``(batch,)``.
    """
    gen = torch.Generator().manual_seed(seed)
    if kind == "edge":
        ei = problem.edge_index
        ei = ei[:, ei[0] < ei[1]]
        pick = ei[:, torch.randperm(ei.size(1), generator=gen)[: count * batch]].t()
        return list(pick.split(batch))
    if kind in ("node", "feature"):
        pick = problem.train[torch.randperm(problem.train.numel(), generator=gen)[: count * batch]]
        return list(pick.split(batch))
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


class Unlearner:
    """One method (``"scalegun"``, ``"cgu"``, ``"retrain"``) on one problem."""

    def __init__(self, problem: Problem, method: str, *, r_max_rel: float = 1e-7, r_max: float | None = None,
                 lam: float = 1e-2, alpha: float = 0.1, eps: float = 1.0, delta: float = 1e-4, beta: float = 0.5,
                 weights=SGC2, seed: int = 0):
        """``r_max`` (absolute push threshold) overrides ``r_max_rel``, which is relative to
        the mean column mass of the features (so its absolute value grows with the graph)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if r_max is not None and not r_max > 0:
            raise ValueError(f"r_max must be positive, got {r_max}")
        self.p, self.method, self.beta, self.weights = problem, method, beta, tuple(weights)
        self.graph = Graph(problem.edge_index, problem.num_nodes)
        self.r_max = r_max if r_max is not None else r_max_rel * float(problem.x.abs().sum(0).mean())
        self.train = problem.train.clone()
        t = time.perf_counter()
        if method == "scalegun":
            self.lazy = LazyPropagation(self.graph, problem.x, self.r_max, self.weights, beta)
            self.x = None
        else:
            self.lazy = None
            self.x = problem.x.clone()
            self._removed: set[int] = set()
            self._cleared: set[int] = set()
            self._z = exact_embedding(self.graph, self.x, self.weights, beta)
        self.model = CertifiedLinear(problem.num_classes, lam=lam, alpha=alpha, eps=eps, delta=delta, seed=seed)
        self.model.fit(self.embedding[self.train], problem.y[self.train])
        self.setup_seconds = time.perf_counter() - t
        self.flushes = 0
        self.history: list[dict[str, Any]] = []

    @property
    def embedding(self) -> torch.Tensor:
        return self.lazy.embedding if self.lazy is not None else self._z

    def accuracy(self, idx: torch.Tensor | None = None) -> float:
        idx = self.p.test if idx is None else idx
        return self.model.accuracy(self.embedding[idx], self.p.y[idx])

    def _flush(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Push every residue (exact embeddings); the training rows and their error bound."""
        self.lazy.flush()
        self.flushes += 1
        return self.embedding[self.train], self.lazy.error_bound(), self.lazy.frobenius_bound()

    def remove(self, kind: str, items: torch.Tensor) -> dict[str, Any]:
        """Serve one removal request; returns (and records) what it cost and did: per-class
        maxima of the bounds, the model-level total, and the causes of any flush or retrain."""
        y = self.p.y
        z_old, y_old = self.embedding[self.train], y[self.train]
        t0 = time.perf_counter()
        if self.lazy is not None:
            {"edge": self.lazy.remove_edges, "node": self.lazy.remove_nodes,
             "feature": self.lazy.remove_features}[kind](items)
        else:  # exact: change the graph or the features, then re-propagate everything
            g = self.graph
            if kind == "feature":
                nodes = g.check_nodes(items, self._cleared, "the features")
                self.x[nodes] = 0
                self._cleared.update(nodes.tolist())
            elif kind == "edge":
                u, _, pos = g.locate_edges(items)
                g.switch_off(u, pos)
            else:
                nodes = g.check_nodes(items, self._removed, "the edges")
                u, _, pos = g.incident_edges(nodes)
                g.switch_off(u, pos)
                self._removed.update(nodes.tolist())
            self._z = exact_embedding(g, self.x, self.weights, self.beta)
        if kind in ("node", "feature"):
            self.train = self.train[~torch.isin(self.train, torch.as_tensor(items))]
        t_emb = time.perf_counter() - t0
        t1 = time.perf_counter()
        z_new, y_new = self.embedding[self.train], y[self.train]
        if self.method == "retrain":
            self.model.fit(z_new, y_new)
            rec = None
        else:
            lazy = self.lazy
            rec = self.model.remove(z_old, y_old, z_new, y_new, lazy.error_bound() if lazy is not None else None,
                                    flush=self._flush if lazy is not None else None,
                                    frobenius=lazy.frobenius_bound() if lazy is not None else None)
        t_model = time.perf_counter() - t1
        out = {
            "kind": kind, "items": int(torch.as_tensor(items).view(-1, 2 if kind == "edge" else 1).size(0)),
            "accuracy": self.accuracy(), "embedding_seconds": t_emb, "model_seconds": t_model,
            "retrained": bool(rec.retrained) if rec is not None else True,
            "flushed": bool(rec.flushed) if rec is not None else False,
            "causes": list(rec.causes) if rec is not None else ["retrain: the method retrains"],
        }
        if rec is not None:
            out.update(newton=rec.newton_bound.max().item(), accumulated=rec.accumulated.max().item(),
                       approximation=rec.approximation.max().item(), total=rec.total.max().item(),
                       model_total=rec.model_total, model_approximation=float(rec.approximation.norm()),
                       budget=rec.budget, certified=rec.certified)
        self.history.append(out)
        return out


def run_sequence(problem: Problem, method: str, kind: str, reqs: list[torch.Tensor], **kw) -> dict[str, Any]:
    """Serve ``reqs`` with a fresh :class:`Unlearner`; the initial accuracy and every step."""
    u = Unlearner(problem, method, **kw)
    start = u.accuracy()
    for items in reqs:
        u.remove(kind, items)
    return {"method": method, "kind": kind, "initial_accuracy": start, "setup_seconds": u.setup_seconds,
            "steps": u.history, "retrains": u.model.retrains, "flushes": u.flushes}


def cgu_edge_worst_case(m: int, lam: float, hops: int = 2, gamma1: float = 0.25, gamma2: float = 0.25,
                        c: float = 1.0, c1: float = 1.0) -> float:
    """CGU's worst-case gradient-residual bound for one edge removal, as coded in its
    repository (``16 γ₂ K² (cγ₁ + λc₁)² / (λ⁴ m)``); not re-derived here."""
    return 16 * gamma2 * hops**2 * (c * gamma1 + lam * c1) ** 2 / (lam**4 * m)


def bounds_trace(problem: Problem, reqs: list[torch.Tensor], **kw) -> dict[str, list[float]]:
    """Single-edge ScaleGUN removals on ``problem``: per request, the true gradient residual
    on the *exact* remaining data, the data-dependent bound (accumulated Newton bounds +
    approximation term), CGU's worst-case bound accumulated over the requests, and the budget.
    Model-level: Frobenius norms over the classes (CGU's per-class worst case times √C)."""
    u = Unlearner(problem, "scalegun", **kw)
    y = problem.y
    m = problem.train.numel()
    out: dict[str, list[float]] = {"true": [], "data_dependent": [], "approximation": [], "worst_case": [],
                                   "budget": []}
    for i, items in enumerate(reqs, 1):
        rec = u.remove("edge", items)
        exact = exact_embedding(u.graph, u.lazy.features(), u.weights, u.beta)[u.train]
        true = u.model.gradient(u.model.w, exact, y[u.train]).norm().item()
        out["true"].append(true)
        out["data_dependent"].append(rec["model_total"])
        out["approximation"].append(rec["model_approximation"])
        out["worst_case"].append(i * cgu_edge_worst_case(m, u.model.lam, hops=len(u.weights) - 1)
                                 * problem.num_classes**0.5)
        out["budget"].append(rec["budget"])
    return out


def rmax_tradeoff(problem: Problem, r_max_rels, edges: torch.Tensor, **kw) -> list[dict[str, float]]:
    """For each relative ``r_max``: the time of one batch edge removal (embedding update),
    the pushes it made, and the model-level approximation term of the certificate afterwards."""
    rows = []
    for rel in r_max_rels:
        u = Unlearner(problem, "scalegun", r_max_rel=rel, **kw)
        t = time.perf_counter()
        u.lazy.remove_edges(edges)
        sec = time.perf_counter() - t
        approx = u.model.approximation_term(u.embedding[u.train], u.lazy.error_bound(),
                                            frobenius=u.lazy.frobenius_bound()).norm().item()  # model-level
        rows.append({"r_max_rel": rel, "r_max": u.r_max, "update_seconds": sec, "pushes": u.lazy.pushes,
                     "approximation": approx, "budget": u.model.budget,
                     "max_error": float((exact_embedding(u.graph, u.lazy.features()) - u.embedding).abs().max())})
    return rows


def efficacy(problem: Problem, nodes: int = 20, seed: int = 0, **kw) -> dict[str, Any]:
    """Replay test and membership inference for ``nodes`` deleted training nodes.

    The nodes get a trigger (extra feature columns) and a new class; every method then
    removes them (node-feature removal, as the authors' replay test) in one request.
    Returns, per method and before/after, how many deleted nodes and how many nodes in
    total are predicted as the trigger class, and the attack's member rate on the deleted
    nodes.
    """
    from .efficacy import membership_rate, replay_features

    gen = torch.Generator().manual_seed(seed)
    deleted = problem.train[torch.randperm(problem.train.numel(), generator=gen)[:nodes]]
    x, y = replay_features(problem.x, problem.y, deleted)
    p = Problem(problem.name, x, problem.edge_index, y, problem.train, problem.val, problem.test)
    trigger = int(y.max())
    out: dict[str, Any] = {"deleted": nodes}
    retrained = Unlearner(p, "retrain", **kw)
    retrained.remove("feature", deleted)
    shadow = retrained.embedding.double() @ retrained.model.w
    for method in METHODS:
        u = Unlearner(p, method, **kw)
        before = u.model.predict(u.embedding)
        rate_before = membership_rate(shadow, retrained.train, problem.test,
                                      u.embedding.double() @ u.model.w, deleted)
        u.remove("feature", deleted)
        after = u.model.predict(u.embedding)
        out[method] = {
            "deleted_as_trigger_before": int((before[deleted] == trigger).sum()),
            "all_as_trigger_before": int((before == trigger).sum()),
            "deleted_as_trigger_after": int((after[deleted] == trigger).sum()),
            "all_as_trigger_after": int((after == trigger).sum()),
            "member_rate_before": rate_before,
            "member_rate_after": membership_rate(shadow, retrained.train, problem.test,
                                                 u.embedding.double() @ u.model.w, deleted),
            "test_accuracy_after": u.accuracy(),
        }
    out["member_rate_test_nodes"] = membership_rate(shadow, retrained.train, problem.test, shadow, problem.test[:500])
    return out


def cost_on(problem: Problem, batch: int, r_max_rel: float = 1e-7, seed: int = 1, repeats: int = 3,
            **kw) -> dict[str, Any]:
    """Seconds of a batch of ``batch`` random edge removals, split into the embedding update
    and the model update (ScaleGUN), against exact re-propagation and retraining.

    After one warm-up request, ``repeats`` requests are timed, and re-propagation and
    retraining ``repeats`` times each on the graph they leave: each time's median (the
    ``*_seconds`` fields) and its smallest and largest value (``*_min``, ``*_max``), and how
    many of the timed requests flushed.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    u = Unlearner(problem, "scalegun", r_max_rel=r_max_rel, **kw)
    reqs = requests(problem, "edge", repeats + 1, batch, seed=seed)
    u.remove("edge", reqs[0])  # warm-up
    recs = [u.remove("edge", r) for r in reqs[1:]]
    times: dict[str, list[float]] = {"embedding": [r["embedding_seconds"] for r in recs],
                                     "model": [r["model_seconds"] for r in recs], "repropagation": [], "retrain": []}
    for _ in range(repeats):
        t = time.perf_counter()
        z = exact_embedding(u.graph, u.lazy.features(), u.weights, u.beta)
        times["repropagation"].append(time.perf_counter() - t)
        t = time.perf_counter()
        CertifiedLinear(problem.num_classes, lam=u.model.lam, alpha=u.model.alpha).fit(z[u.train], problem.y[u.train])
        times["retrain"].append(time.perf_counter() - t)
    edges = int((problem.edge_index[0] < problem.edge_index[1]).sum())
    out: dict[str, Any] = {"nodes": problem.num_nodes, "edges": edges, "features": problem.x.size(1), "batch": batch,
                           "repeats": repeats, "flushes": sum(r["flushed"] for r in recs),
                           "causes": sorted({c for r in recs for c in r["causes"]})}
    for k, v in times.items():
        v = torch.tensor(v)
        out |= {f"{k}_seconds": float(v.median()), f"{k}_min": float(v.min()), f"{k}_max": float(v.max())}
    return out
