"""Adjacency helpers shared by every topic: dense <-> edge_index, normalisation, degrees.

Conventions: ``edge_index: (2, 2E) long`` holds both directions of each undirected edge;
a dense adjacency is ``adj: (N, N) float`` with zero diagonal.
"""

from __future__ import annotations

import torch
from torch_geometric.utils import to_undirected

__all__ = [
    "to_dense",
    "from_dense",
    "normalize_dense",
    "normalized_sparse",
    "normalized_csr",
    "propagate",
    "degrees",
    "num_undirected_edges",
    "check_adjacency",
    "as_operator",
    "dense",
    "SparseMatrix",
    "apply_flips",
]


def to_dense(edge_index: torch.Tensor, num_nodes: int, dtype=torch.float32) -> torch.Tensor:
    """Dense ``(N, N)`` adjacency with ones at ``edge_index`` (no self-loops added)."""
    adj = torch.zeros(num_nodes, num_nodes, dtype=dtype, device=edge_index.device)
    adj[edge_index[0], edge_index[1]] = 1
    return adj


def from_dense(adj: torch.Tensor) -> torch.Tensor:
    """``edge_index: (2, nnz)`` of the non-zero entries of a dense ``(N, N)`` adjacency."""
    return adj.nonzero().t().contiguous()


def normalize_dense(adj: torch.Tensor, self_loops: bool = True) -> torch.Tensor:
    """``D^{-1/2} (A + I) D^{-1/2}`` for a dense ``(N, N)`` adjacency; differentiable in ``adj``.

    Degrees are taken after adding the self-loops, so no node has degree zero.
    """
    if self_loops:
        adj = adj + torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)
    deg = adj.sum(1)
    inv_sqrt = deg.clamp_min(1e-12).pow(-0.5)
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


def normalized_sparse(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sparse (COO) ``D^{-1/2} (A + I) D^{-1/2}`` of shape ``(N, N)``."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    return torch.sparse_coo_tensor(
        ei, w, (num_nodes, num_nodes), check_invariants=False
    ).coalesce()


def normalized_csr(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``Â = D^{-1/2} (A + I) D^{-1/2}`` as a sparse CSR tensor ``(N, N)``.

    PyG layers given a sparse adjacency instead of ``edge_index`` propagate with one sparse
    matrix product instead of gather/scatter message passing (several times faster on CPU).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return normalized_sparse(edge_index, num_nodes).to_sparse_csr()


def propagate(x: torch.Tensor, edge_index: torch.Tensor, k: int) -> torch.Tensor:
    """``Â^k X`` with the GCN-normalised adjacency ``Â`` (SGC features). ``x: (N, D)``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    a_hat = normalized_sparse(edge_index, x.size(0))
    for _ in range(k):
        x = a_hat @ x
    return x


def degrees(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Out-degree of each node, ``(N,) long`` (the degree, for an undirected edge_index)."""
    return torch.bincount(edge_index[0], minlength=num_nodes)


def num_undirected_edges(edge_index: torch.Tensor) -> int:
    """Number of undirected edges (self-loops excluded) of a symmetric edge_index."""
    ei = edge_index[:, edge_index[0] != edge_index[1]]
    return int(to_undirected(ei).size(1) // 2)


def check_adjacency(adj: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``adj`` is a square, symmetric, binary, loop-free matrix."""
    if adj.dim() != 2 or adj.size(0) != adj.size(1):
        raise ValueError(f"adjacency must be square (N, N), got shape {tuple(adj.shape)}")
    if not torch.equal(adj, adj.t()):
        raise ValueError("adjacency is not symmetric (directed graphs are not supported)")
    if not bool(((adj == 0) | (adj == 1)).all()):
        raise ValueError("adjacency is not binary (weighted graphs are not supported)")
    if bool(adj.diagonal().ne(0).any()):
        raise ValueError("adjacency has self-loops on its diagonal")


def dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a strided (dense) tensor: sparse COO/CSR matrices are densified, dense ones returned as is."""
    return x.to_dense() if x.layout != torch.strided else x


def as_operator(x: torch.Tensor) -> torch.Tensor:
    """Features as a CSR matrix when mostly zero (bag-of-words, identity), else dense.

    Products ``x @ W`` then cost O(nnz · h) instead of O(N · D · h).
    """
    if x.is_sparse or x.layout == torch.sparse_csr:
        return x
    if x.count_nonzero() < 0.3 * x.numel():
        return x.to_sparse_csr()
    return x


class _SparseTimesDense(torch.autograd.Function):
    """``A @ B`` with ``A`` sparse CSR (fixed pattern) and the gradient flowing into ``B`` only."""

    @staticmethod
    def forward(ctx, values, dense, matrix):
        ctx.matrix = matrix
        ctx.save_for_backward(values)
        return matrix._csr(values) @ dense

    @staticmethod
    def backward(ctx, grad):
        (values,) = ctx.saved_tensors
        m = ctx.matrix
        return None, m._csr_t(values) @ grad, None


class SparseMatrix:
    """A sparse CSR matrix ``(R, K)`` whose transpose is built once, for ``A @ B`` with ``dB``.

    PyTorch's backward of a CSR product transposes the matrix on every call (a sort of all
    non-zeros); training a GNN does that twice per layer and epoch. Here the transpose's
    pattern and the permutation that maps ``A``'s stored values onto it are computed once, so
    the backward is one more sparse product. ``values`` may be replaced per call by a tensor
    of the same length (e.g. dropout on the stored entries); gradients flow into the dense
    factor only. ``symmetric=True`` (e.g. ``Â``) reuses ``A`` as its own transpose.
    """

    def __init__(self, matrix: torch.Tensor, symmetric: bool = False):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            if matrix.layout == torch.strided:
                matrix = matrix.to_sparse_csr()
            elif matrix.layout != torch.sparse_csr:
                matrix = matrix.coalesce().to_sparse_csr()
            self.shape = tuple(matrix.shape)
            self.crow, self.col, self.values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
            if symmetric:
                if self.shape[0] != self.shape[1]:
                    raise ValueError(f"a symmetric matrix must be square, got {self.shape}")
                self.crow_t, self.col_t, self.perm = self.crow, self.col, None
            else:
                rows = torch.repeat_interleave(torch.arange(self.shape[0], device=self.crow.device),
                                               self.crow.diff())
                order = torch.arange(rows.numel(), device=rows.device)
                t = torch.sparse_coo_tensor(torch.stack([self.col, rows]), order, (self.shape[1], self.shape[0]),
                                            check_invariants=False).coalesce().to_sparse_csr()
                self.crow_t, self.col_t, self.perm = t.crow_indices(), t.col_indices(), t.values()

    @property
    def nnz(self) -> int:
        return self.values.numel()

    def _csr(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)

    def _csr_t(self, values: torch.Tensor) -> torch.Tensor:
        v = values if self.perm is None else values[self.perm]
        return torch.sparse_csr_tensor(self.crow_t, self.col_t, v, self.shape[::-1], check_invariants=False)

    def matmul(self, dense: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        """``A @ dense``: ``(R, K) @ (K, D) -> (R, D)``; ``values`` replaces ``A``'s stored entries."""
        import warnings

        values = self.values if values is None else values
        if values.shape != self.values.shape:
            raise ValueError(f"values must have shape {tuple(self.values.shape)}, got {tuple(values.shape)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if not dense.requires_grad:
                return self._csr(values) @ dense
            return _SparseTimesDense.apply(values, dense, self)


def apply_flips(edge_index: torch.Tensor, flips: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Toggle the pairs ``flips: (k, 2)`` in the undirected graph ``edge_index: (2, 2E)``.

    A pair that is an edge is removed, any other pair inserted; the result holds both
    directions, sorted. Self-pairs and repeated pairs are refused.
    """
    flips = torch.as_tensor(flips, dtype=torch.long).reshape(-1, 2)
    if bool((flips[:, 0] == flips[:, 1]).any()):
        raise ValueError("a flip pairs a node with itself")
    if flips.numel() and (int(flips.min()) < 0 or int(flips.max()) >= num_nodes):
        raise ValueError(f"a flip names a node outside 0..{num_nodes - 1}")
    u, v = flips.min(1).values, flips.max(1).values
    code = u * num_nodes + v
    if code.unique().numel() != code.numel():
        raise ValueError("the same pair is flipped twice")
    a, b = edge_index
    upper = a < b
    edges = a[upper] * num_nodes + b[upper]
    present = torch.isin(code, edges)
    kept = edges[~torch.isin(edges, code[present])]
    new = torch.cat([kept, code[~present]]).sort().values
    r, c = new // num_nodes, new % num_nodes
    out = torch.stack([torch.cat([r, c]), torch.cat([c, r])])
    order = (out[0] * num_nodes + out[1]).argsort()
    return out[:, order]
