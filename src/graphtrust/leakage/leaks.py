"""What a single-graph gradient of :class:`~.model.GraphClassifier` gives away in closed form.

Derived here by back-propagation (the GraphDLG paper's theorem could not be read; see the
chapter): with ``u = W₁ h_G + b₁`` the first head layer and ``δ₁ = ∂L/∂u``,

* **label** — the last bias gradient is ``softmax(ŷ) − onehot(y)``: its only negative
  entry is the label (the iDLG observation);
* **pooled embedding** — ``∇W₁ = δ₁ h_Gᵀ`` and ``∇b₁ = δ₁``, so ``h_G = ∇W₁[j] / ∇b₁[j]`` for
  any ``j`` with ``δ₁[j] ≠ 0`` (we take the largest ``|∇b₁[j]|``);
* **node count** — ``∇W_L = (ĀH_{L-1})ᵀ G_L`` has rank at most ``n``, and exactly the number
  of linearly independent node states when the layers are wide enough: its numerical
  rank is a *lower bound* on ``n``: nodes with equal states, and nodes whose last ReLU is
  dead for every unit, add nothing. On MUTAG, whose atoms share one-hot features and
  neighbourhoods, it gives 4–8 for graphs of 11–28 nodes. :mod:`.size` turns it, a size
  prior and gradient distances into an estimate;
* **node features given the structure** — a recursion down the layers: from the top
  gradient ``G_L = ∂L/∂Z_L`` (pooling spreads ``W₁ᵀδ₁`` over the nodes; the last ReLU
  multiplies by its activation mask), ``∇W_i = (ĀH_{i-1})ᵀG_i`` determines ``ĀH_{i-1}`` by
  least squares when ``G_i`` has rank ``n``, ``Ā`` (if invertible) then gives ``H_{i-1}``, its sign pattern
  gives the mask of layer ``i-1``, and ``G_{i-1} = (ĀᵀG_iW_iᵀ) ⊙ mask``. It is exact when
  the structure and the top mask are right, every layer is at least ``n`` wide and ``Ā``
  is invertible; it is not closed-form without the top mask, and it cannot work with mean
  pooling after a *linear* last layer (``G_L`` then has rank one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..graph import normalize_dense
from .model import GraphClassifier

__all__ = ["check_gradients", "recover_label", "recover_pooled", "numerical_rank", "estimate_num_nodes",
           "closed_form_features"]


def check_gradients(model: GraphClassifier, grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Raise unless ``grads`` has one tensor per model parameter with its shape."""
    params = list(model.parameters())
    if len(grads) != len(params):
        raise ValueError(f"expected {len(params)} gradient tensors (one per parameter), got {len(grads)}")
    for i, (g, p) in enumerate(zip(grads, params)):
        if tuple(g.shape) != tuple(p.shape):
            raise ValueError(f"gradient {i} has shape {tuple(g.shape)}, the parameter {tuple(p.shape)}")
    return list(grads)


def _head(model: GraphClassifier, grads):
    g = check_gradients(model, grads)
    k = len(model.gcn)
    return g[:k], g[k], g[k + 1], g[k + 2], g[k + 3]  # gcn, W1, b1, W2, b2


def recover_label(model: GraphClassifier, grads: Sequence[torch.Tensor]) -> int:
    """The label of a single-graph gradient: the negative entry of the last bias gradient."""
    return int(_head(model, grads)[4].argmin())


def recover_pooled(model: GraphClassifier, grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The pooled graph embedding ``h_G: (hidden,)`` of a single-graph gradient."""
    _, w1, b1, _, _ = _head(model, grads)
    j = int(b1.abs().argmax())
    if float(b1[j].abs()) == 0.0:
        raise ValueError("the head's bias gradient is zero: the pooled embedding does not leak")
    return w1[j] / b1[j]


def numerical_rank(t: torch.Tensor, rtol: float = 1e-6) -> int:
    """Singular values of ``t`` above ``rtol`` times the largest (0 for a zero matrix)."""
    s = torch.linalg.svdvals(t.detach().double())
    return int((s > rtol * s[0]).sum()) if s.numel() and float(s[0]) > 0 else 0


def estimate_num_nodes(model: GraphClassifier, grads: Sequence[torch.Tensor], rtol: float = 1e-6) -> int:
    """Numerical rank of the last GCN layer's weight gradient: a lower bound on the node
    count (see the module docstring; :func:`~.size.rank_bound` takes every layer)."""
    return numerical_rank(_head(model, grads)[0][-1], rtol)


def closed_form_features(model: GraphClassifier, grads: Sequence[torch.Tensor], adj: torch.Tensor,
                         top_mask: torch.Tensor | None = None, normalized: bool = False,
                         strict: bool = True) -> torch.Tensor:
    """Node features ``X: (n, F)`` from a single-graph gradient, given the structure.

    ``adj: (n, n)`` is the (recovered) adjacency, ``top_mask: (n, hidden)`` the activation
    pattern of the last GCN layer (``None`` for a model without a last activation). Raises
    when the model cannot identify ``n`` nodes: a layer narrower than ``n``, or (with
    ``strict``) a layer gradient ``G_i`` of rank below ``n`` — nodes whose back-propagated
    signals are linearly dependent, e.g. equal states, cannot be told apart, and the
    least-squares solution is then only the minimum-norm one (``strict=False`` returns it).
    """
    gcn, w1, b1, _, _ = _head(model, grads)
    n = adj.size(0)
    widths = [w.size(1) for w in model.gcn]
    if n > min(widths):
        raise ValueError(f"{n} nodes cannot be identified by GCN layers of widths {widths}: "
                         "the recursion needs every layer at least as wide as the graph")
    if model.last_activation and top_mask is None:
        raise ValueError("the last GCN layer has a ReLU: its activation pattern (top_mask) is needed")
    dt = torch.float64
    a = (adj if normalized else normalize_dense(adj)).to(dt)
    d_hg = model.head1.weight.detach().to(dt).t() @ b1.to(dt)  # ∂L/∂h_G = W₁ᵀ δ₁
    scale = 1.0 / n if model.pooling == "mean" else 1.0
    g = scale * d_hg.expand(n, -1).clone()
    if model.last_activation:
        g = g * top_mask.to(dt)
    h = None
    for i in range(len(gcn) - 1, -1, -1):
        if strict:
            rank = int(torch.linalg.matrix_rank(g))
            if rank < n:
                raise ValueError(f"not identifiable: the gradient of GCN layer {i + 1} has rank {rank} < {n} nodes")
        p = torch.linalg.lstsq(g.t(), gcn[i].to(dt).t()).solution  # Ā H_{i-1}: (n, d_{i-1})
        if strict and int(torch.linalg.matrix_rank(a)) < n:
            raise ValueError("not identifiable: the normalised adjacency is singular, so ĀH does not determine H")
        h = torch.linalg.lstsq(a, p).solution
        if i > 0:
            # H_{i-1} = ReLU(Z_{i-1}): exact zeros come back as round-off, hence the tolerance
            mask = (h > 1e-9 * float(h.abs().max())).to(dt)
            h = h * mask
            g = (a.t() @ g @ model.gcn[i].detach().to(dt).t()) * mask
    return h
