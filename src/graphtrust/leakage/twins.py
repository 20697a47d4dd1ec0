"""Graphs that the gradient cannot tell apart: how much structure a gradient determines.

**Exact blindness.** :class:`~.model.GraphClassifier` has GCN layers without biases and the
normalised adjacency with self-loops ``Ā = D^{-1/2}(A + I)D^{-1/2}``. If a matrix of node
states has equal rows, ``H = 1 vᵀ``, then ``ĀH = (Ā1) vᵀ``; for a *regular* graph ``Ā1 = 1``,
so ``ĀH = H``. With one node type, ``X = 1 e_tᵀ`` has equal rows, every layer keeps them
(``ReLU`` acts row-wise), and back-propagation keeps them too (mean pooling sends the same
signal to every node). So on a regular graph with one node type, every layer computes
what it computes on the empty graph: the empty graph, a ring and the complete graph on
``n`` carbons give the same gradient, for any weights. :func:`regular_twins` builds them.

**Approximate twins.** A molecule is neither regular nor of one atom type, but long runs of
it are close to both. :func:`twin_search` looks, by simulated annealing over edge swaps,
for a graph with the victim's node features and a given edge count whose gradient is as
close as it can find to the victim's. A twin at a tiny gradient distance that shares few
edges with the victim is a graph the attacker cannot rule out from the gradient: no
decoder, learned or not, can do better on that victim than chance between the two.

**The twin attack** (:func:`twin_attack`, registered as ``twin-random``) turns this into an
attack for an attacker without the victim's atoms. What random auxiliary graphs *can*
teach is the atom composition: :func:`fit_composition` fits a ridge regression from the
decoder's observation (:func:`~.decoder.observation`) to the shares of atom types and the
edges per node. The attack takes the predicted atoms and edge count, searches for a
gradient twin with them, and scores every pair by the edge density between its two atom
types in the twin (:func:`type_pair_scores`). The twin fixes which atom types bond and how
often, which the gradient determines well; the density hedges over *which* atoms of those
types bond, which it does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .decoder import Graph, observation, simulate
from .leaks import check_gradients, recover_label
from .matching import Reconstruction, gradient_distance, gradient_of
from .model import GraphClassifier

__all__ = ["Twin", "regular_twins", "twin_search", "Composition", "fit_composition", "type_pair_scores",
           "twin_attack"]


@dataclass
class Twin:
    """A graph found by :func:`twin_search`: ``adj: (n, n)`` 0/1, its gradient distance to
    the target (DLG's scale-free distance), the start's distance, and the seconds taken."""

    adj: torch.Tensor
    distance: float
    start_distance: float
    seconds: float


def regular_twins(n: int, num_features: int, atom_type: int = 0,
                  dtype: torch.dtype = torch.float64) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Regular graphs on ``n`` nodes of one type ``atom_type``, as ``{name: (adj, x)}``: the
    empty graph, a ring, the complete graph and (``n`` divisible by 3) disjoint triangles.
    Their gradients under a :class:`~.model.GraphClassifier` are equal (module docstring)."""
    if n < 3:
        raise ValueError(f"need at least 3 nodes for a ring, got n={n}")
    if not 0 <= atom_type < num_features:
        raise ValueError(f"atom_type must be in [0, {num_features}), got {atom_type}")
    x = torch.zeros(n, num_features, dtype=dtype)
    x[:, atom_type] = 1.0
    i = torch.arange(n)
    ring = torch.zeros(n, n, dtype=dtype)
    ring[i, (i + 1) % n] = 1.0
    out = {"empty": torch.zeros(n, n, dtype=dtype), "ring": ring + ring.t(),
           "complete": torch.ones(n, n, dtype=dtype) - torch.eye(n, dtype=dtype)}
    if n % 3 == 0:
        tri = torch.block_diag(*[torch.ones(3, 3, dtype=dtype) - torch.eye(3, dtype=dtype)] * (n // 3))
        out["triangles"] = tri
    return {k: (a, x) for k, a in out.items()}


def _batched_distance(model: GraphClassifier, x: torch.Tensor, target: torch.Tensor, grads: Sequence[torch.Tensor]):
    """``adj: (B, n, n)`` → the gradient distance of each graph (one vectorised call)."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    norm = sum((g * g).sum() for g in grads).clamp_min(1e-30)

    def loss(p, adj):
        return -(target * torch.log_softmax(functional_call(model, p, (adj, x)), -1)).sum()

    def dist(adj):
        g = grad(loss)(params, adj)
        return sum(((g[k] - t) ** 2).sum() for k, t in zip(params, grads)) / norm

    return vmap(dist)


def twin_search(model: GraphClassifier, grads: Sequence[torch.Tensor], x: torch.Tensor, num_edges: int, *,
                steps: int = 4000, batch: int = 16, temperature: float = 0.05, seed: int = 0) -> Twin:
    """Simulated annealing for a graph with node features ``x: (n, F)`` and ``num_edges``
    edges whose gradient (under the label the gradient leaks) is closest to ``grads``.

    A move swaps one edge for one non-edge (the edge count stays). Each round draws
    ``batch`` moves, measures all of them in one vectorised call and keeps the best; if it
    raises the distance ``d`` to ``d'``, it is accepted with probability
    ``exp(−(d' − d) / (T d))``, the temperature ``T`` falling linearly from ``temperature``
    to 0 (relative to the current distance, so the schedule does not depend on the
    gradient's scale). ``steps`` moves are measured in all (``steps // batch`` rounds).
    ``batch=1`` is plain annealing, the stronger optimiser for a given number of moves
    (the chapter's bound uses it); larger batches are several times faster per move (the
    attack uses 16). With no edges or all pairs joined (two-node molecules of AIDS) no
    swap exists: the one graph with that count is returned, measured, without a search."""
    n = x.size(0)
    pairs = n * (n - 1) // 2
    if not 0 <= num_edges <= pairs:
        raise ValueError(f"num_edges must be in [0, {pairs}] for {n} nodes, got {num_edges}")
    if steps < 1 or batch < 1 or temperature < 0:
        raise ValueError(f"need steps >= 1, batch >= 1 and temperature >= 0, got {steps}, {batch}, {temperature}")
    t0 = time.perf_counter()
    grads = [g.detach() for g in check_gradients(model, grads)]
    target = torch.nn.functional.one_hot(torch.tensor(recover_label(model, grads)), model.num_classes).to(x.dtype)
    if batch > 1:
        measure = _batched_distance(model, x, target, grads)
    else:  # one graph at a time: plain autograd is faster than a vectorised call of one
        def measure(adj):
            return gradient_distance(gradient_of(model, adj[0], x, target, create_graph=False), grads)[None]
    iu = torch.triu_indices(n, n, 1)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(pairs, generator=gen)
    edges, holes = perm[:num_edges].clone(), perm[num_edges:].clone()  # pair indices, swapped in place
    adj = x.new_zeros(n, n)
    adj[iu[0, edges], iu[1, edges]] = 1.0
    adj = adj + adj.t()
    cur = start = float(measure(adj[None])[0])
    best, best_adj = cur, adj.clone()
    rounds = max(1, steps // batch) if 0 < num_edges < pairs else 0
    b = torch.arange(batch)
    for r in range(rounds):
        temp = temperature * (1 - r / rounds)
        i1 = torch.randint(len(edges), (batch,), generator=gen)
        i0 = torch.randint(len(holes), (batch,), generator=gen)
        e1, e0 = iu[:, edges[i1]], iu[:, holes[i0]]
        trial = adj.expand(batch, n, n).clone()
        trial[b, e1[0], e1[1]] = trial[b, e1[1], e1[0]] = 0.0
        trial[b, e0[0], e0[1]] = trial[b, e0[1], e0[0]] = 1.0
        d = measure(trial)
        k = int(d.argmin())
        dk = float(d[k])
        u = float(torch.rand(1, generator=gen))
        if dk < cur or (temp > 0 and u < math.exp(-(dk - cur) / (temp * cur + 1e-300))):
            cur, adj = dk, trial[k]
            edges[i1[k]], holes[i0[k]] = holes[i0[k]].clone(), edges[i1[k]].clone()
            if dk < best:
                best, best_adj = dk, adj.clone()
    return Twin(best_adj, best, start, time.perf_counter() - t0)


@dataclass
class Composition:
    """A ridge regression from a standardised observation ``φ: (D,)`` to the shares of the
    ``F`` atom types and the edges per node (:func:`fit_composition`)."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    weight: torch.Tensor  # (D, F + 1)
    bias: torch.Tensor  # (F + 1,)
    num_features: int

    def predict(self, phi: torch.Tensor, n: int) -> tuple[torch.Tensor, int]:
        """Atom types of ``n`` nodes ``(n,)`` (sorted; the shares rounded to counts by largest
        remainder) and an edge count (at least ``n − 1``, the least a connected graph has;
        fewer than all pairs where that leaves a choice, i.e. ``n ≥ 3``)."""
        y = ((phi.to(self.mean.dtype) - self.mean) / self.std) @ self.weight + self.bias
        share = y[: self.num_features].clamp_min(0)
        share = share / share.sum() if float(share.sum()) > 0 else torch.full_like(share, 1 / self.num_features)
        c = share * n
        k = torch.floor(c).long()
        k[torch.argsort(-(c - k))[: n - int(k.sum())]] += 1
        m = int(round(float(y[-1]) * n))
        return torch.repeat_interleave(torch.arange(self.num_features), k), max(min(m, n * (n - 1) // 2 - 1), n - 1)


def fit_composition(model: GraphClassifier, aux: Sequence[Graph], ridge: float = 1000.0) -> Composition:
    """Fit :class:`Composition` on auxiliary graphs ``(adj, x, label)`` (their simulated
    gradients under ``model``; graphs whose pooled embedding does not leak are skipped)."""
    if ridge <= 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    kept, phi = simulate(model, aux)
    if len(kept) < 2:
        raise ValueError(f"need at least 2 auxiliary graphs that leak their pooled embedding, got {len(kept)}")
    y = torch.stack([torch.cat([x.sum(0), torch.tensor([float(a.sum()) / 2], dtype=x.dtype)]) / a.size(0)
                     for a, x, _ in kept]).double()
    phi = phi.double()
    mean, std = phi.mean(0), phi.std(0).clamp_min(1e-8)
    z = (phi - mean) / std
    bias = y.mean(0)
    weight = torch.linalg.solve(z.t() @ z + ridge * torch.eye(z.size(1), dtype=z.dtype), z.t() @ (y - bias))
    return Composition(mean, std, weight, bias, aux[0][1].size(1))


def type_pair_scores(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Edge scores ``(n, n)``: for every pair, the share of the pairs between its two atom
    types (``x`` one-hot, ``(n, F)``) that ``adj`` joins; zero diagonal."""
    t = x.argmax(1)
    onehot = torch.nn.functional.one_hot(t, x.size(1)).to(adj.dtype)
    edges = onehot.t() @ adj @ onehot  # edges between types (within a type: counted twice)
    k = onehot.sum(0)
    pairs = torch.outer(k, k) - torch.diag(k)  # ordered pairs of distinct nodes
    s = (edges / pairs.clamp_min(1))[t][:, t]
    return s.fill_diagonal_(0.0)


def twin_attack(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int, composition: Composition, *,
                steps: int = 4000, batch: int = 16, temperature: float = 0.05, seed: int = 0) -> Reconstruction:
    """The twin attack (module docstring): predicted atoms and edge count, a gradient twin
    with them (:func:`twin_search`), type-pair densities as edge scores."""
    t0 = time.perf_counter()
    grads = check_gradients(model, grads)
    types, m = composition.predict(observation(model, grads, num_nodes), num_nodes)
    dt = next(model.parameters()).dtype
    x = torch.nn.functional.one_hot(types, composition.num_features).to(dt)
    twin = twin_search(model, grads, x, m, steps=steps, batch=batch, temperature=temperature, seed=seed)
    return Reconstruction(type_pair_scores(twin.adj, x), x, recover_label(model, grads), time.perf_counter() - t0,
                          {"edges": m, "twin_distance": twin.distance, "start_distance": twin.start_distance})
