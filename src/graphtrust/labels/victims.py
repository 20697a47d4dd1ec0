"""Victim GNNs of the label-poisoning chapter, built from PyG layers.

All map ``(x, edge_index)`` to logits: GCN (hidden 64), GAT (8 heads × 8), APPNP (an MLP
followed by ``K = 10`` personalised-PageRank propagation steps) and an MLP. ``x`` may be
dense or a sparse CSR tensor (:func:`graphtrust.models.sparse_features`).

The protocols train thousands of victims on one graph, so GCN and APPNP turn
``edge_index`` into the normalised sparse ``Â`` once per model (cached on the tensor's
identity) and propagate with a sparse product: the same function as PyG's message
passing, about 3× faster per epoch on a 2-core CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import APPNP as APPNPProp
from torch_geometric.nn import GATConv

from ..graph import normalized_csr
from ..models import GCN, MLP, InputDropout, sparse_input

__all__ = ["GAT", "APPNP", "FastGCN", "build_victim", "VICTIMS"]


class _CachedAdjacency:
    """Caches ``Â`` (sparse CSR) for the last ``edge_index`` seen."""

    _adj: tuple[torch.Tensor, torch.Tensor] | None = None

    def adjacency(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if edge_index.layout != torch.strided:  # already a sparse Â
            return edge_index
        if self._adj is None or self._adj[0] is not edge_index:
            self._adj = (edge_index, normalized_csr(edge_index, x.size(0)).to(x.device))
        return self._adj[1]


class FastGCN(GCN, _CachedAdjacency):
    """:class:`graphtrust.models.GCN` (ReLU, dropout) propagating with a cached sparse ``Â``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.5):
        super().__init__(in_dim, hidden, out_dim, dropout=dropout, normalize=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return super().forward(x, self.adjacency(x, edge_index))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return super().embed(x, self.adjacency(x, edge_index))


class GAT(nn.Module):
    """Two-layer graph attention network (Veličković et al., 2018)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 8, heads: int = 8, dropout: float = 0.6):
        super().__init__()
        self.conv1 = GATConv(in_dim, hidden, heads=heads, dropout=dropout)
        sparse_input(self.conv1.lin)  # sparse CSR features: the weight gradient without a transpose per call
        self.conv2 = GATConv(hidden * heads, out_dim, heads=1, dropout=dropout)
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(x)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class APPNP(nn.Module, _CachedAdjacency):
    """Predict, then propagate (Gasteiger et al., 2019): MLP + K steps of PPR propagation."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, k: int = 10, alpha: float = 0.1,
                 dropout: float = 0.5):
        super().__init__()
        self.mlp = MLP(in_dim, hidden, out_dim, dropout=dropout)
        self.prop = APPNPProp(k, alpha, normalize=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.prop(self.mlp(x), self.adjacency(x, edge_index))


VICTIMS = ("gcn", "gat", "appnp", "mlp")


def build_victim(name: str, in_dim: int, out_dim: int, dropout: float = 0.5, **kw) -> nn.Module:
    """A fresh victim by name (one of :data:`VICTIMS`)."""
    if name == "gcn":
        return FastGCN(in_dim, kw.get("hidden", 64), out_dim, dropout=dropout)
    if name == "gat":
        return GAT(in_dim, out_dim, dropout=dropout, **kw)
    if name == "appnp":
        return APPNP(in_dim, out_dim, dropout=dropout, **kw)
    if name == "mlp":
        return MLP(in_dim, kw.get("hidden", 64), out_dim, dropout=dropout)
    raise KeyError(f"unknown victim {name!r}; one of {', '.join(VICTIMS)}")
