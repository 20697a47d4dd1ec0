"""Does unlearning remove what it should? Two empirical checks.

* :func:`replay_features` — the *deleted-data replay test* (after Izzo et al., 2021): give
  the nodes to be deleted a private trigger (extra feature columns set to 1) and a new
  class. A model trained on them predicts the new class for them; after unlearning them it
  should not, and no other node should be predicted as that class.
* :func:`membership_rate` — a membership-inference check: an attack classifier learns to
  tell training nodes (members) from test nodes by the model's sorted class
  probabilities; applied to the deleted nodes, it should call few of them members after
  unlearning (as few as for a model retrained without them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["replay_features", "membership_rate"]


def replay_features(x: torch.Tensor, y: torch.Tensor, nodes: torch.Tensor, extra_dims: int = 20,
                    value: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features with ``extra_dims`` trigger columns set on ``nodes``, labels with a new class.

    ``x: (N, F)`` preprocessed features (rows of norm ≤ 1). By default the trigger part of a
    row has the norm of the largest feature row (weaker triggers are partly washed out by
    propagation: on Cora half the norm left 12 of 20 nodes unconvinced); rows are rescaled
    afterwards so norms stay ≤ 1.
    Returns ``(x': (N, F + extra_dims), y': (N,))`` with class ``C = y.max() + 1`` on ``nodes``.
    """
    n = x.size(0)
    trig = torch.zeros(n, extra_dims, dtype=x.dtype)
    v = value if value is not None else float(x.norm(dim=1).max()) / extra_dims**0.5
    trig[nodes] = v
    xx = torch.cat([x, trig], 1)
    xx = xx / xx.norm(dim=1).max().clamp_min(1e-12)
    yy = y.clone()
    yy[nodes] = int(y.max()) + 1
    return xx, yy


def _posterior_features(logits: torch.Tensor, k: int = 3) -> torch.Tensor:
    p = F.softmax(logits.double(), 1).sort(1, descending=True).values[:, :k]
    return torch.cat([p, (p * p.clamp_min(1e-12).log()).sum(1, keepdim=True)], 1)  # top-k + entropy


def membership_rate(shadow_logits: torch.Tensor, members: torch.Tensor, non_members: torch.Tensor,
                    target_logits: torch.Tensor, queried: torch.Tensor, epochs: int = 300) -> float:
    """Share of ``queried`` nodes an attack classifier calls members.

    The attack (logistic regression on the sorted top-3 probabilities and their entropy)
    is trained on ``shadow_logits`` with ``members`` as 1 and ``non_members`` as 0
    (balanced by subsampling), then applied to ``target_logits[queried]``.
    """
    k = min(members.numel(), non_members.numel())
    gen = torch.Generator().manual_seed(0)
    mem = members[torch.randperm(members.numel(), generator=gen)[:k]]
    non = non_members[torch.randperm(non_members.numel(), generator=gen)[:k]]
    feats = _posterior_features(shadow_logits)
    xa = torch.cat([feats[mem], feats[non]])
    ya = torch.cat([torch.ones(k), torch.zeros(k)]).double()
    mu, sd = xa.mean(0), xa.std(0).clamp_min(1e-9)
    w = torch.zeros(xa.size(1), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=epochs, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits((xa - mu) / sd @ w + b, ya) + 1e-3 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    q = (_posterior_features(target_logits)[queried] - mu) / sd
    with torch.no_grad():
        return float(((q @ w + b) > 0).double().mean())
