"""The linearised two-layer GCN surrogate of Metattack and the pieces its gradients need.

The surrogate computes logits ``Z = Â Â X W1 W2`` (no bias, no non-linearity, hidden
width ``h``), with ``Â = D̃^{-1/2}(A + I)D̃^{-1/2}``. Everything here is written for a
dense, symmetric, binary adjacency ``adj: (N, N)`` that changes one pair at a time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


@dataclass
class Propagation:
    """``Â`` of one adjacency, as a sparse operator, plus what its derivative needs.

    ``adj: (N, N)`` dense 0/1. ``a_hat`` is CSR ``(N, N)``; ``s = d̃^{-1/2}: (N,)`` with
    ``d̃`` the degrees including the self-loop; ``rows, cols`` index the non-zeros of
    ``A + I``.
    """

    a_hat: torch.Tensor
    s: torch.Tensor
    deg: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor

    @classmethod
    def from_dense(cls, adj: torch.Tensor) -> Propagation:
        n = adj.size(0)
        idx = adj.nonzero()
        return cls.from_keys(idx[:, 0] * n + idx[:, 1], n, adj.dtype)

    @classmethod
    def from_keys(cls, keys: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> Propagation:
        """``Â`` of the graph whose directed edges are ``keys = u·n + v`` (both directions, no loops)."""
        dev = keys.device
        loops = torch.arange(n, device=dev)
        all_keys = torch.sort(torch.cat([keys, loops * n + loops])).values
        rows, cols = all_keys // n, all_keys % n
        counts = torch.bincount(rows, minlength=n)
        deg = counts.to(dtype)
        s = deg.rsqrt()
        vals = s[rows] * s[cols]
        crow = torch.zeros(n + 1, dtype=torch.long, device=dev)
        crow[1:] = torch.cumsum(counts, 0)
        a_hat = torch.sparse_csr_tensor(crow, cols, vals, (n, n), check_invariants=False)
        return cls(a_hat, s, deg, rows, cols)

    def to(self, dtype: torch.dtype) -> Propagation:
        """The same operator with values of ``dtype``."""
        if self.s.dtype == dtype:
            return self
        s, deg = self.s.to(dtype), self.deg.to(dtype)
        a = self.a_hat
        a_hat = torch.sparse_csr_tensor(a.crow_indices(), a.col_indices(), a.values().to(dtype), a.shape,
                                        check_invariants=False)
        return Propagation(a_hat, s, deg, self.rows, self.cols)

    def __call__(self, y: torch.Tensor, times: int = 1) -> torch.Tensor:
        """``Â^times @ y`` for ``y: (N, k)``."""
        for _ in range(times):
            y = self.a_hat @ y
        return y

    def pair_gradient(self, g_sym: torch.Tensor) -> torch.Tensor:
        """Chain ``dL/dÂ`` to the flip of an undirected pair.

        ``g_sym = G + Gᵀ`` with ``G = dL/dÂ: (N, N)``. Returns ``(N, N)`` whose entry
        ``(u, v)`` is ``dL/dA_uv + dL/dA_vu``: the direct term ``g_sym_uv s_u s_v`` plus
        the change through the degrees of ``u`` and ``v``,
        ``c_i = -½ d̃_i^{-3/2} Σ_j g_sym_ij Ã_ij s_j``.
        """
        picked = g_sym[self.rows, self.cols] * self.s[self.cols]
        c = torch.zeros_like(self.s).index_add_(0, self.rows, picked)
        c = -0.5 * self.deg.pow(-1.5) * c
        out = g_sym * self.s[:, None]
        out *= self.s[None, :]
        out += c[:, None]
        out += c[None, :]
        return out


def glorot(rows: int, cols: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Glorot/Xavier-uniform ``(rows, cols)`` weights drawn from ``generator`` (CPU)."""
    bound = (6.0 / (rows + cols)) ** 0.5
    return (torch.rand(rows, cols, generator=generator, dtype=dtype) * 2 - 1) * bound
