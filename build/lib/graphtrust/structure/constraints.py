"""Unnoticeability constraints on structure perturbations, for all node pairs at once.

* :func:`singleton_mask` — no flip may leave a node without neighbours.
* :func:`degree_test_mask` — the likelihood-ratio test of Zügner et al. (KDD 2018) that
  the perturbed degree sequence still follows the clean graph's power law, evaluated for
  every candidate flip in O(N²) vectorised work.

Both take the current dense adjacency ``adj: (N, N)`` and return a boolean ``(N, N)``
mask of admissible flips.
"""

from __future__ import annotations

import math

import torch

__all__ = ["singleton_mask", "degree_test_mask", "degree_test_block", "powerlaw_alpha", "powerlaw_loglik", "degree_test_statistic"]

D_MIN = 2
THRESHOLD = 0.004  # about the 95 % quantile of a chi-square with 1 dof divided by 1000


def singleton_mask(adj: torch.Tensor) -> torch.Tensor:
    """False where removing the edge ``(u, v)`` would leave ``u`` or ``v`` with degree 0."""
    lonely = adj.sum(1) <= 1
    return ~((adj > 0) & (lonely[:, None] | lonely[None, :]))


def powerlaw_alpha(n: torch.Tensor, log_sum: torch.Tensor, d_min: int = D_MIN) -> torch.Tensor:
    """Maximum-likelihood exponent of a discrete power law (continuous approximation).

    ``n`` degrees ``>= d_min`` with ``log_sum = Σ log d`` over them.
    """
    return 1.0 + n / (log_sum - n * math.log(d_min - 0.5))


def powerlaw_loglik(n: torch.Tensor, log_sum: torch.Tensor, alpha: torch.Tensor, d_min: int = D_MIN) -> torch.Tensor:
    """Log-likelihood ``n log α + n α log d_min − (α + 1) Σ log d`` (the corrected sign)."""
    return n * torch.log(alpha) + n * alpha * math.log(d_min) - (alpha + 1) * log_sum


def _stats(deg: torch.Tensor, d_min: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = deg >= d_min
    return keep.sum().to(torch.float64), torch.log(deg[keep].to(torch.float64)).sum()


def degree_test_statistic(deg_clean: torch.Tensor, deg_new: torch.Tensor, d_min: int = D_MIN) -> float:
    """``Λ = −2 ℓ(combined) + 2 (ℓ(clean) + ℓ(new))`` for two degree sequences."""
    n0, s0 = _stats(deg_clean, d_min)
    n1, s1 = _stats(deg_new, d_min)
    ll0 = powerlaw_loglik(n0, s0, powerlaw_alpha(n0, s0, d_min), d_min)
    ll1 = powerlaw_loglik(n1, s1, powerlaw_alpha(n1, s1, d_min), d_min)
    nc, sc = n0 + n1, s0 + s1
    llc = powerlaw_loglik(nc, sc, powerlaw_alpha(nc, sc, d_min), d_min)
    return float(-2 * llc + 2 * (ll0 + ll1))


def degree_test_mask(
    adj: torch.Tensor, deg_clean: torch.Tensor, threshold: float = THRESHOLD, d_min: int = D_MIN
) -> torch.Tensor:
    """True for the flips after which the degree test statistic stays below ``threshold``.

    ``adj: (N, N)`` dense; see :func:`degree_test_block` for a block of rows.
    """
    return degree_test_block(adj.sum(1), deg_clean, adj > 0, 0, 0, threshold, d_min)


def degree_test_block(
    deg: torch.Tensor, deg_clean: torch.Tensor, edge: torch.Tensor, r0: int, c0: int = 0,
    threshold: float = THRESHOLD, d_min: int = D_MIN,
) -> torch.Tensor:
    """:func:`degree_test_mask` for the block ``edge: (B, N − c0)`` of rows ``r0:r0+B``.

    A flip of ``(u, v)`` changes only ``d_u`` and ``d_v`` (by +1 for an insertion, −1
    for a removal), so the count ``n`` and log-sum ``S`` of the degrees ``>= d_min``
    change by per-node amounts that are added for every pair in one broadcast.
    ``deg: (N,)`` current degrees, ``deg_clean: (N,)`` the clean graph's.
    """
    deg = deg.to(torch.float64)
    n0, s0 = _stats(deg_clean.to(torch.float64), d_min)
    n, s = _stats(deg, d_min)

    def change(delta: int):
        new = deg + delta
        old_in, new_in = deg >= d_min, new >= d_min
        dn = new_in.to(torch.float64) - old_in.to(torch.float64)
        ds = torch.where(new_in, torch.log(new.clamp_min(1)), 0) - torch.where(old_in, torch.log(deg.clamp_min(1)), 0)
        return dn, ds

    rows = slice(r0, r0 + edge.size(0))
    cols = slice(c0, c0 + edge.size(1))
    dn_add, ds_add = change(+1)
    dn_del, ds_del = change(-1)
    dn = torch.where(edge, dn_del[rows, None] + dn_del[None, cols], dn_add[rows, None] + dn_add[None, cols])
    ds = torch.where(edge, ds_del[rows, None] + ds_del[None, cols], ds_add[rows, None] + ds_add[None, cols])
    n_new, s_new = n + dn, s + ds
    ll_new = powerlaw_loglik(n_new, s_new, powerlaw_alpha(n_new, s_new, d_min), d_min)
    nc, sc = n0 + n_new, s0 + s_new
    ll_comb = powerlaw_loglik(nc, sc, powerlaw_alpha(nc, sc, d_min), d_min)
    ll0 = powerlaw_loglik(n0, s0, powerlaw_alpha(n0, s0, d_min), d_min)
    stat = -2 * ll_comb + 2 * (ll0 + ll_new)
    return stat < threshold
