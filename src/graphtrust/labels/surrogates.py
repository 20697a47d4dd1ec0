"""Linear surrogates whose predictions are linear in the training labels.

Both give a matrix ``M: (|T|, ℓ)`` with ``Z_T = M Ŷ_L``: the scores of the target nodes
``T`` as a linear map of the one-hot labels ``Ŷ_L: (ℓ, C)`` of the labelled pool ``L``.

* :func:`sgc_map` — ridge regression on SGC features ``X̂ = Â²X`` in its dual form,
  ``M = X̂_T X̂_Lᵀ (X̂_L X̂_Lᵀ + λI)^{-1}``: an ``ℓ × ℓ`` solve instead of the primal
  ``D × D`` pseudo-inverse (identical predictions; the tests check it).
* :func:`ntk_map` — kernel regression with the neural tangent kernel of a ReLU GCN,
  ``M = Θ_TL Θ_LL^+``, with the kernel of :func:`gcn_ntk`.
"""

from __future__ import annotations

import math

import torch

from ..graph import as_operator, dense, normalized_sparse

__all__ = ["sgc_features", "sgc_map", "lafak_map", "gcn_ntk", "ntk_map"]


def sgc_features(x: torch.Tensor, edge_index: torch.Tensor, k: int = 2) -> torch.Tensor:
    """``X̂ = Â^k X`` with the GCN normalisation (self-loops, symmetric). ``(N, D)``."""
    a_hat = normalized_sparse(edge_index, x.size(0)).to(x.dtype)
    for _ in range(k):
        x = torch.sparse.mm(a_hat, x)
    return x


def sgc_map(xhat: torch.Tensor, pool: torch.Tensor, targets: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Ridge map ``M: (|targets|, |pool|)`` on SGC features (dual form). ``lam > 0``."""
    if lam <= 0:
        raise ValueError(f"the ridge parameter must be positive, got {lam}")
    xl = xhat[pool].double()
    gram = xl @ xl.t()
    gram.diagonal().add_(lam)
    sol = torch.linalg.solve(gram, xl)  # (X̂_L X̂_Lᵀ + λI)^{-1} X̂_L
    return (xhat[targets].double() @ sol.t()).to(xhat.dtype)


def lafak_map(
    x: torch.Tensor,
    edge_index: torch.Tensor,
    pool: torch.Tensor,
    targets: torch.Tensor,
    node_labels: torch.Tensor,
    classes: tuple[int, int],
    lam: float = 5e-3,
) -> torch.Tensor:
    """LafAK's own surrogate map ``M: (|targets|, |pool|)`` (Zhang et al., ICDM 2020).

    LafAK reduces the problem to the two classes ``classes``: it keeps the subgraph induced
    by the nodes of those classes (``node_labels: (N,)`` are the labels the attacker
    assumes: clean pool labels, true or pseudo labels of the targets), row-normalises the
    features, and fits ridge regression (``λ = 5·10⁻³``) on ``X̂ = Â_sub² X``. Rows and
    columns of nodes outside the two classes are zero. Dual form, as :func:`sgc_map`.
    """
    from torch_geometric.utils import subgraph

    a, b = classes
    keep = (node_labels == a) | (node_labels == b)
    nodes = keep.nonzero().view(-1)
    sub_ei, _ = subgraph(nodes, edge_index, relabel_nodes=True, num_nodes=node_labels.numel())
    xs = x[nodes].double()
    xs = xs / xs.abs().sum(1, keepdim=True).clamp_min(1e-12)
    xhat = sgc_features(xs, sub_ei)
    pos = torch.full((node_labels.numel(),), -1, dtype=torch.long)
    pos[nodes] = torch.arange(nodes.numel())
    lp, tp = pos[pool], pos[targets]
    ok_l, ok_t = lp >= 0, tp >= 0
    m = torch.zeros(targets.numel(), pool.numel(), dtype=torch.float64)
    sub = sgc_map(xhat, lp[ok_l], tp[ok_t], lam=lam)
    m[ok_t.nonzero().view(-1)[:, None], ok_l.nonzero().view(-1)[None, :]] = sub
    return m


def _relu_kernels(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc-cosine kernels of a ReLU: ``E = q·κ₁(u)`` and ``Ė = κ₀(u)``, ``u = Σ_ij / q_ij``.

    ``(N, N)`` each; computed with in-place steps, so two ``N × N`` temporaries beyond the
    outputs instead of one per operation.
    """
    d = sigma.diagonal().clamp_min(1e-30).sqrt()
    q = torch.outer(d, d)
    u = torch.div(sigma, q).clamp_(-1.0, 1.0)
    e_dot = torch.arccos(u).neg_().add_(math.pi)  # π − θ
    e = torch.mul(u, e_dot).add_(u.mul(u).neg_().add_(1.0).clamp_min_(0.0).sqrt_()).mul_(q).div_(math.pi)
    return e, e_dot.div_(math.pi)


def _sandwich(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``S M S`` for a symmetric sparse CSR ``S`` and a symmetric dense ``M: (N, N)``."""
    return s @ (s @ m).t()


def gcn_ntk(x: torch.Tensor, edge_index: torch.Tensor, relu_layers: int = 1, variant: str = "exact") -> torch.Tensor:
    """Neural tangent kernel ``Θ: (N, N)`` of an infinitely wide ReLU GCN.

    With ``S = Â``: ``Σ₁ = S X Xᵀ S``, ``Θ₁ = Σ₁``, and per ReLU layer
    ``Σ_{k+1} = S E(Σ_k) S``, ``Θ_{k+1} = Σ_{k+1} + S (Θ_k ⊙ Ė(Σ_k)) S``.
    ``relu_layers=1`` is the two-layer GCN ``S σ(S X W₁) W₂`` (two propagations); it matches
    the empirical NTK of a wide GCN (the tests check it).

    ``variant="authors"`` is the kernel of the label-poisoning authors' notebook, as our
    reference digest reads it: two ReLU layers (three propagations) and the tangent term
    ``Θ_k ⊙ (S Sᵀ) ⊙ Ė(Σ_k)`` in place of ``S (Θ_k ⊙ Ė) S``. It is a legitimate kernel, not
    the NTK of the two-layer GCN the paper attacks. Dense ``N × N`` in float64: fine for
    Cora-ML/Citeseer sizes.
    """
    if variant not in ("exact", "authors"):
        raise ValueError(f"variant must be 'exact' or 'authors', got {variant!r}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        s = normalized_sparse(edge_index, x.size(0)).double().to_sparse_csr()
        op = as_operator(x.double())  # CSR when mostly zero (bag-of-words)
        xd = dense(op)
        if op.layout != torch.strided:
            # S (X Xᵀ) S: the Gram matrix from the sparse features costs nnz(X)·N, not N²·D
            sigma = _sandwich(s, op.to_sparse_csr() @ xd.t().contiguous())
        else:
            xs = s @ xd
            sigma = xs @ xs.t()
        theta = sigma.clone()
        if variant == "authors":
            relu_layers = 2
            sst = s @ s.to_dense().t()
        for _ in range(relu_layers):
            e, e_dot = _relu_kernels(sigma)
            sigma = _sandwich(s, e)
            del e
            if variant == "authors":
                theta = sigma + theta * sst * e_dot
            else:
                theta = sigma + _sandwich(s, theta.mul_(e_dot))
    return theta


def ntk_map(theta: torch.Tensor, pool: torch.Tensor, targets: torch.Tensor, rcond: float = 1e-8) -> torch.Tensor:
    """Kernel-regression map ``M = Θ_TL Θ_LL^+: (|targets|, |pool|)``."""
    t_ll = theta[pool][:, pool]
    return theta[targets][:, pool] @ torch.linalg.pinv(t_ll, rtol=rcond, hermitian=True)
