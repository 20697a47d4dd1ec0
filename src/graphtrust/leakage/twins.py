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
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .leaks import check_gradients, recover_label
from .matching import gradient_distance, gradient_of
from .model import GraphClassifier

__all__ = ["Twin", "regular_twins", "twin_search"]


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


def twin_search(model: GraphClassifier, grads: Sequence[torch.Tensor], x: torch.Tensor, num_edges: int, *,
                steps: int = 4000, temperature: float = 0.05, seed: int = 0) -> Twin:
    """Simulated annealing for a graph with node features ``x: (n, F)`` and ``num_edges``
    edges whose gradient (under the label the gradient leaks) is closest to ``grads``.

    Moves swap one edge for one non-edge (the edge count stays). A move that raises the
    distance ``d`` to ``d'`` is accepted with probability ``exp(−(d' − d) / (T d))``, the
    temperature ``T`` falling linearly from ``temperature`` to 0 (relative to the current
    distance, so the schedule does not depend on the gradient's scale)."""
    n = x.size(0)
    pairs = n * (n - 1) // 2
    if not 0 < num_edges < pairs:
        raise ValueError(f"num_edges must be in (0, {pairs}) for {n} nodes, got {num_edges}")
    if steps < 1 or temperature < 0:
        raise ValueError(f"need steps >= 1 and temperature >= 0, got {steps} and {temperature}")
    t0 = time.perf_counter()
    grads = [g.detach() for g in check_gradients(model, grads)]
    target = torch.nn.functional.one_hot(torch.tensor(recover_label(model, grads)), model.num_classes).to(x.dtype)
    iu = torch.triu_indices(n, n, 1)
    gen = torch.Generator().manual_seed(seed)

    def adjacency(on: torch.Tensor) -> torch.Tensor:
        a = x.new_zeros(n, n)
        a[iu[0, on], iu[1, on]] = 1.0
        return a + a.t()

    def dist(on: torch.Tensor) -> float:
        return float(gradient_distance(gradient_of(model, adjacency(on), x, target, create_graph=False), grads))

    on = torch.zeros(pairs, dtype=torch.bool)
    on[torch.randperm(pairs, generator=gen)[:num_edges]] = True
    cur = start = dist(on)
    best, best_on = cur, on.clone()
    for s in range(steps):
        temp = temperature * (1 - s / steps)
        edges, holes = torch.nonzero(on).flatten(), torch.nonzero(~on).flatten()
        e1 = edges[torch.randint(len(edges), (1,), generator=gen)]
        e0 = holes[torch.randint(len(holes), (1,), generator=gen)]
        on[e1], on[e0] = False, True
        d = dist(on)
        u = float(torch.rand(1, generator=gen))
        if d < cur or (temp > 0 and u < math.exp(-(d - cur) / (temp * cur + 1e-300))):
            cur = d
            if d < best:
                best, best_on = d, on.clone()
        else:
            on[e1], on[e0] = True, False
    return Twin(adjacency(best_on), best, start, time.perf_counter() - t0)
