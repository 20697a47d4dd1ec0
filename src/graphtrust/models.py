"""Node-classification models shared by the chapters.

Every model maps ``x: (N, D)`` and a graph argument to logits ``(N, C)``:

* :class:`GCN` — sparse, PyG's :class:`~torch_geometric.nn.GCNConv`; graph = ``edge_index``.
* :class:`DenseGCN` — the same model on a dense ``(N, N)`` adjacency, differentiable with
  respect to it (what structure attacks need); ``activation=None`` gives the linearised
  surrogate of Metattack/Nettack.
* :class:`SGC` — logistic regression on ``Â^K X``; graph = ``edge_index``.
* :class:`MLP`, :class:`LogisticRegression` — ignore the graph (pass ``None``).

``x`` may be dense or sparse CSR. Bag-of-words features are better passed through
:func:`sparse_features` (cached, so call it per model): the input layer then computes with
:func:`linear`, whose weight gradient reuses one transpose of the feature pattern. A new
model takes sparse input by calling :func:`linear` for its first product, or
:func:`sparse_input` on a PyG layer's ``lin``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCNConv
from torch_geometric.nn.dense.linear import Linear as PygLinear

from .graph import SparseMatrix, dense, normalize_dense, propagate

__all__ = ["InputDropout", "sparse_features", "linear", "sparse_input", "GCN", "DenseGCN", "SGC", "MLP", "LogisticRegression", "build"]


#: the last dense input :func:`sparse_features` converted: (x, its version counter, the result)
_CONVERTED: tuple[torch.Tensor, int, torch.Tensor] | None = None


def sparse_features(x: torch.Tensor, max_density: float = 0.25) -> torch.Tensor:
    """``x: (N, D)`` as a sparse CSR tensor when at most ``max_density`` of it is non-zero.

    GCN, MLP, APPNP and GAT accept either layout; with bag-of-words features (Cora-ML: 1.8 %
    non-zero) the first layer's product and its weight gradient then cost O(nnz · hidden)
    instead of O(N · D · hidden): a GCN victim on Cora-ML trains 4× faster on one thread
    (with :func:`linear`). The same function: the sums run in another order, so trained
    weights agree to about 1e-6. The result for the last ``x`` seen is cached (an in-place
    change of ``x`` is noticed), so calling this per model costs nothing.
    """
    global _CONVERTED
    if x.layout != torch.strided or x.dim() != 2:
        return x
    c = _CONVERTED
    if c is not None and c[0] is x and c[1] == x._version:
        return c[2]
    out = x
    if int(x.count_nonzero()) <= max_density * x.numel():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            out = x.to_sparse_csr()
    _CONVERTED = (x, x._version, out)
    return out


#: the last sparse feature pattern seen by :func:`linear`: (crow, col, shape, its SparseMatrix)
_PATTERN: tuple[torch.Tensor, torch.Tensor, tuple[int, ...], SparseMatrix] | None = None


def _pattern(x: torch.Tensor) -> SparseMatrix:
    """The :class:`~graphtrust.graph.SparseMatrix` of ``x``'s non-zero pattern (cached).

    :class:`InputDropout` gives a new CSR tensor every epoch that shares the input's index
    tensors, so the cache compares the index storage; it holds the indices, so their memory
    cannot be reused by another tensor while cached.
    """
    global _PATTERN
    crow, col = x.crow_indices(), x.col_indices()
    c = _PATTERN
    if (c is None or c[2] != tuple(x.shape) or c[0].data_ptr() != crow.data_ptr()
            or c[1].data_ptr() != col.data_ptr() or c[1].numel() != col.numel() or c[0].device != crow.device):
        _PATTERN = c = (crow, col, tuple(x.shape), SparseMatrix(x))
    return c[3]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` for ``x: (N, D)`` dense or sparse CSR, ``weight: (H, D)``.

    With sparse CSR ``x`` (see :func:`sparse_features`) the weight gradient ``x.T @ grad``
    uses a transpose of ``x``'s pattern built once (:class:`~graphtrust.graph.SparseMatrix`)
    instead of the one PyTorch's backward builds on every call. Cora-ML's features, 16
    outputs, forward and backward on one thread of a busy 2-core machine: 2.3 ms against
    11.5 ms for PyTorch's CSR product and 20.5 ms for the dense one. The same products.
    """
    if x.layout != torch.sparse_csr or x.requires_grad:  # the cached path sends no gradient into x
        return F.linear(x, weight, bias)
    out = _pattern(x).matmul(weight.t(), values=x.values())
    return out if bias is None else out + bias


class _Linear(PygLinear):
    """PyG's ``Linear`` whose product takes sparse CSR input through :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def sparse_input(lin: PygLinear) -> PygLinear:
    """Let PyG's ``lin`` (the input layer of ``GCNConv``, ``GATConv``, …) take sparse CSR
    features through :func:`linear`. The module keeps its parameters (no new draw from the
    random generator, so seeded models are unchanged); only its ``forward`` changes."""
    if not isinstance(lin, PygLinear):
        raise TypeError(f"expected torch_geometric.nn.Linear, got {type(lin).__name__}")
    lin.__class__ = _Linear
    return lin


class InputDropout(nn.Module):
    """Dropout on the input features that touches only their non-zero entries.

    Zeros stay zero under dropout, so for sparse bag-of-words features (Cora: 1.3 % non-zero)
    dropping only the non-zeros is the same random map at a fraction of the cost of drawing
    N·D random numbers (about 20x faster on a 2-core CPU). Dense inputs use ``F.dropout``.
    The non-zero pattern is cached for the last input tensor seen.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {p}")
        self.p = p
        self._cache: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.sparse_csr:  # see sparse_features: drop stored values only
            if not self.training or self.p == 0.0:
                return x
            values = x.values()
            keep = (torch.rand(values.numel(), device=x.device) >= self.p).to(values.dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values * keep / (1.0 - self.p),
                                               x.shape, device=x.device)
        if not self.training or self.p == 0.0 or x.requires_grad:
            return F.dropout(x, self.p, self.training)
        if self._cache is None or self._cache[0] is not x:
            nz = x.nonzero() if x.dim() == 2 and x.count_nonzero() < 0.25 * x.numel() else None
            self._cache = (x, nz)
        nz = self._cache[1]
        if nz is None:
            return F.dropout(x, self.p, True)
        keep = torch.rand(nz.size(0), device=x.device) >= self.p
        rows, cols = nz[keep, 0], nz[keep, 1]
        out = torch.zeros_like(x)
        out[rows, cols] = x[rows, cols] / (1.0 - self.p)
        return out


def _dims(in_dim: int, hidden: int, out_dim: int, num_layers: int) -> list[int]:
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return [in_dim] + [hidden] * (num_layers - 1) + [out_dim]


class GCN(nn.Module):
    """Kipf & Welling's GCN with PyG layers: ``(dropout → conv → ReLU)* → dropout → conv``.

    ``activation=None`` drops the ReLU (the linearised GCN of Nettack/Metattack).
    ``normalize=False`` expects ``edge_index`` to be the normalised ``Â`` as a sparse tensor
    (see :func:`graphtrust.graph.normalized_csr`): propagation is then one sparse product.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        bias: bool = True,
        activation: str | None = "relu",
        normalize: bool = True,
    ):
        super().__init__()
        if activation not in ("relu", None):
            raise ValueError(f"activation must be 'relu' or None, got {activation!r}")
        self.activation = activation
        dims = _dims(in_dim, hidden, out_dim, num_layers)
        self.convs = nn.ModuleList(
            GCNConv(a, b, bias=bias, normalize=normalize) for a, b in zip(dims[:-1], dims[1:])
        )
        sparse_input(self.convs[0].lin)  # the first layer may get sparse CSR features
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = self.input_dropout(x) if i == 0 else F.dropout(x, self.dropout, self.training)
            x = conv(x, edge_index, edge_weight)
            if i < len(self.convs) - 1 and self.activation == "relu":
                x = F.relu(x)
        return x

    @torch.no_grad()
    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Hidden representation before the last layer, ``(N, hidden)`` (eval mode)."""
        for conv in self.convs[:-1]:
            x = F.relu(conv(x, edge_index))
        return x


class DenseGCN(nn.Module):
    """GCN on a dense adjacency ``adj: (N, N)``, normalised inside ``forward``.

    Gradients flow into ``adj``, so ``torch.autograd.grad(loss, adj)`` scores every node
    pair. ``activation=None`` removes the non-linearity (the linearised surrogate).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        num_layers: int = 2,
        dropout: float = 0.5,
        bias: bool = True,
        activation: str | None = "relu",
    ):
        super().__init__()
        if activation not in ("relu", None):
            raise ValueError(f"activation must be 'relu' or None, got {activation!r}")
        dims = _dims(in_dim, hidden, out_dim, num_layers)
        self.lins = nn.ModuleList(
            nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:])
        )
        for lin in self.lins:  # Glorot, as GCNConv
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor, adj: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        a_hat = adj if normalized else normalize_dense(adj)
        for i, lin in enumerate(self.lins):
            x = self.input_dropout(x) if i == 0 else F.dropout(x, self.dropout, self.training)
            x = a_hat @ linear(x, lin.weight)
            if lin.bias is not None:
                x = x + lin.bias
            if i < len(self.lins) - 1 and self.activation == "relu":
                x = F.relu(x)
        return x


class SGC(nn.Module):
    """Simplified graph convolution: a linear classifier on ``Â^K X`` (Wu et al., 2019).

    The propagated features are cached for the last ``(x, edge_index)`` pair seen, so a
    training loop pays for the propagation once.
    """

    def __init__(self, in_dim: int, out_dim: int, k: int = 2, bias: bool = True):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=bias)
        self.k = k
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def features(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        c = self._cache
        if c is None or c[0] is not x or c[1] is not edge_index:
            with torch.no_grad():  # Â^K X is dense: sparse CSR features are densified first
                self._cache = (x, edge_index, propagate(dense(x), edge_index, self.k))
        return self._cache[2]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.lin(self.features(x, edge_index))


class MLP(nn.Module):
    """Multi-layer perceptron on node features; ignores the graph."""

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 2, dropout: float = 0.5
    ):
        super().__init__()
        dims = _dims(in_dim, hidden, out_dim, num_layers)
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout)

    def forward(self, x: torch.Tensor, graph: object = None) -> torch.Tensor:
        for i, lin in enumerate(self.lins):
            x = self.input_dropout(x) if i == 0 else F.dropout(x, self.dropout, self.training)
            x = linear(x, lin.weight, lin.bias)
            if i < len(self.lins) - 1:
                x = F.relu(x)
        return x


class LogisticRegression(nn.Module):
    """Multinomial logistic regression on node features; ignores the graph."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor, graph: object = None) -> torch.Tensor:
        return linear(x, self.lin.weight, self.lin.bias)


def build(name: str, in_dim: int, out_dim: int, hidden: int = 16, **kwargs) -> nn.Module:
    """Build a model by name: ``gcn``, ``dense_gcn``, ``sgc``, ``mlp``, ``logreg``."""
    name = name.lower()
    if name == "gcn":
        return GCN(in_dim, hidden, out_dim, **kwargs)
    if name == "dense_gcn":
        return DenseGCN(in_dim, hidden, out_dim, **kwargs)
    if name == "sgc":
        return SGC(in_dim, out_dim, **kwargs)
    if name == "mlp":
        return MLP(in_dim, hidden, out_dim, **kwargs)
    if name in ("logreg", "logistic_regression"):
        return LogisticRegression(in_dim, out_dim, **kwargs)
    raise KeyError(f"unknown model {name!r}; one of gcn, dense_gcn, sgc, mlp, logreg")
