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

from ..graph import normalized_sparse

__all__ = ["sgc_features", "sgc_map", "gcn_ntk", "ntk_map"]


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


def _relu_kernels(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arc-cosine kernels of a ReLU: ``E = q·κ₁(u)`` and ``Ė = κ₀(u)``, ``u = Σ_ij / q_ij``."""
    d = sigma.diagonal().clamp_min(1e-30).sqrt()
    q = d[:, None] * d[None, :]
    u = (sigma / q).clamp(-1.0, 1.0)
    theta = torch.arccos(u)
    e = q * (u * (math.pi - theta) + torch.sqrt((1 - u * u).clamp_min(0))) / math.pi
    e_dot = (math.pi - theta) / math.pi
    return e, e_dot


def gcn_ntk(x: torch.Tensor, edge_index: torch.Tensor, relu_layers: int = 1) -> torch.Tensor:
    """Neural tangent kernel ``Θ: (N, N)`` of an infinitely wide ReLU GCN.

    With ``S = Â``: ``Σ₁ = S X Xᵀ S``, ``Θ₁ = Σ₁``, and per ReLU layer
    ``Σ_{k+1} = S E(Σ_k) S``, ``Θ_{k+1} = Σ_{k+1} + S (Θ_k ⊙ Ė(Σ_k)) S``.
    ``relu_layers=1`` is the two-layer GCN ``S σ(S X W₁) W₂`` (two propagations).
    Dense ``N × N`` in float64: fine for Cora-ML/Citeseer sizes.
    """
    s = normalized_sparse(edge_index, x.size(0)).double()
    xs = torch.sparse.mm(s, x.double())
    sigma = xs @ xs.t()
    theta = sigma.clone()
    for _ in range(relu_layers):
        e, e_dot = _relu_kernels(sigma)
        sigma = torch.sparse.mm(s, torch.sparse.mm(s, e).t()).t()
        theta = sigma + torch.sparse.mm(s, torch.sparse.mm(s, theta * e_dot).t()).t()
    return theta


def ntk_map(theta: torch.Tensor, pool: torch.Tensor, targets: torch.Tensor, rcond: float = 1e-8) -> torch.Tensor:
    """Kernel-regression map ``M = Θ_TL Θ_LL^+: (|targets|, |pool|)``."""
    t_ll = theta[pool][:, pool]
    return theta[targets][:, pool] @ torch.linalg.pinv(t_ll, rtol=rcond, hermitian=True)
