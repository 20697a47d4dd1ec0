"""The node count ``n``: what an attacker who is *not* told it can estimate from the gradient.

Every reconstruction needs ``n``. Three sources of evidence, combined in :func:`estimate_nodes`:

* **The rank bound** (closed form). Every GCN layer's weight gradient is
  ``∇W_i = (ĀH_{i-1})ᵀ G_i``, a product through ``n`` rows, so its rank is at most ``n``:
  ``low = max_i rank(∇W_i)`` is a valid *lower* bound for an undefended single-graph
  gradient (noise makes every gradient full-rank and voids it). It equals ``n`` when the
  node states are linearly independent, ``A + I`` is invertible and every layer is at
  least ``n`` wide. Look-alike nodes (molecules: atoms of one type with the same
  neighbourhood) and twins (adjacent nodes with the same neighbours: equal rows of
  ``A + I``, so ``rank ∇W_i ≤ rank(A + I)``) make it lower, on MUTAG far lower.
* **The size prior** of the domain: the attacker's auxiliary graphs give the sizes it
  considers, ``high`` = the largest of them (a bound only for victims of that domain).
* **Gradient distance.** For each candidate size in ``[low, high]`` the attacker simulates
  what it can (its auxiliary graphs of that size under the leaked label; the decoder's
  graph of that size, if it has one) and keeps the size of the candidate whose gradient is
  closest to the observed one.

**When the rank identifies n.** The attacker cannot see from one gradient that the bound is
tight, but it can check on its auxiliary graphs: if those of rank ``low`` almost all have
exactly ``low`` nodes (``tight_share``, default 0.9, of at least ``min_tight`` graphs), the
rank is tight in this domain and the estimate is ``low`` (``source="rank"``; so too when the bound
reaches the largest size). With
continuous, generic node attributes and layers at least ``n`` wide this holds for every
graph; on one-hot molecules it never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .decoder import StructureDecoder
from .graphdlg import decoded_candidate
from .leaks import check_gradients, numerical_rank, recover_label
from .matching import gradient_distance
from .model import GraphClassifier, client_gradient

__all__ = ["NodeCount", "rank_bound", "estimate_nodes"]


@dataclass(frozen=True)
class NodeCount:
    """An estimate of ``n`` with its bounds: ``low`` (the rank bound, valid for an
    undefended gradient) ``≤ estimate ≤ high`` (the size prior's largest size), and what
    decided it: ``"rank"`` (tight in this domain), ``"auxiliary"`` (the nearest auxiliary
    graph by gradient distance) or ``"decoder"`` (the decoder's graph of that size)."""

    estimate: int
    low: int
    high: int
    source: str

    @property
    def identified(self) -> bool:
        """The rank bound decided, and the auxiliaries say it is tight."""
        return self.source == "rank"


def rank_bound(model: GraphClassifier, grads: Sequence[torch.Tensor], rtol: float = 1e-6) -> int:
    """``max_i rank(∇W_i)`` over the GCN layers: a lower bound on ``n`` (module docstring)."""
    g = check_gradients(model, grads)
    return max(numerical_rank(gi, rtol) for gi in g[: len(model.gcn)])


def estimate_nodes(model: GraphClassifier, grads: Sequence[torch.Tensor],
                   bank: Sequence[tuple[torch.Tensor, ...]], *, decoder: StructureDecoder | None = None,
                   high: int | None = None, rtol: float = 1e-6, tight_share: float = 0.9,
                   min_tight: int = 3) -> NodeCount:
    """Estimate the victim's node count from its gradient and the attacker's auxiliary
    graphs ``bank`` (``(adj (m, m), x (m, F), …)`` tuples), optionally with its structure
    ``decoder``; ``high`` defaults to the largest auxiliary graph. See the module docstring."""
    if not bank:
        raise ValueError("the attacker holds no auxiliary graphs: it has no size prior to estimate n from")
    g = [t.detach() for t in check_gradients(model, grads)]
    sizes = [int(b[0].size(0)) for b in bank]
    high = max(sizes) if high is None else int(high)
    low = rank_bound(model, g, rtol)
    if low > high:
        raise ValueError(f"the gradient has rank {low}, above the largest size the attacker considers "
                         f"({high}): the victim is outside its size prior (or the gradient is noised)")
    low = max(low, 2)
    if low == high:
        return NodeCount(low, low, high, "rank")
    label = recover_label(model, g)
    dt = g[0].dtype
    best: tuple[float, int, str] = (float("inf"), low, "auxiliary")
    same_rank = tight = 0
    for b, m in zip(bank, sizes):
        if not low <= m <= high:
            continue
        cand = client_gradient(model, [(b[0].to(dt), b[1].to(dt), label)])
        if rank_bound(model, cand, rtol) == low:
            same_rank += 1
            tight += m == low
        d = float(gradient_distance(cand, g))
        if d < best[0]:
            best = (d, m, "auxiliary")
    if same_rank >= min_tight and tight >= tight_share * same_rank:
        return NodeCount(low, low, high, "rank")
    if decoder is not None:
        for m in range(low, min(high, decoder.n_max) + 1):
            _, _, adj, x = decoded_candidate(model, g, m, decoder)
            d = float(gradient_distance(client_gradient(model, [(adj, x, label)]), g))
            if d < best[0]:
                best = (d, m, "decoder")
    return NodeCount(best[1], low, high, best[2])
