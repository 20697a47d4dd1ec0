"""Victim GNNs of the label-poisoning chapter, built from PyG layers.

All map ``(x, edge_index)`` to logits: GCN (hidden 64), GAT (8 heads × 8), APPNP (an MLP
followed by ``K = 10`` personalised-PageRank propagation steps) and an MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import APPNP as APPNPProp
from torch_geometric.nn import GATConv

from ..models import GCN, MLP

__all__ = ["GAT", "APPNP", "build_victim", "VICTIMS"]


class GAT(nn.Module):
    """Two-layer graph attention network (Veličković et al., 2018)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 8, heads: int = 8, dropout: float = 0.6):
        super().__init__()
        self.conv1 = GATConv(in_dim, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, out_dim, heads=1, dropout=dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class APPNP(nn.Module):
    """Predict, then propagate (Gasteiger et al., 2019): MLP + K steps of PPR propagation."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, k: int = 10, alpha: float = 0.1,
                 dropout: float = 0.5):
        super().__init__()
        self.mlp = MLP(in_dim, hidden, out_dim, dropout=dropout)
        self.prop = APPNPProp(k, alpha)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.prop(self.mlp(x), edge_index)


VICTIMS = ("gcn", "gat", "appnp", "mlp")


def build_victim(name: str, in_dim: int, out_dim: int, dropout: float = 0.5, **kw) -> nn.Module:
    """A fresh victim by name (one of :data:`VICTIMS`)."""
    if name == "gcn":
        return GCN(in_dim, kw.get("hidden", 64), out_dim, dropout=dropout)
    if name == "gat":
        return GAT(in_dim, out_dim, dropout=dropout, **kw)
    if name == "appnp":
        return APPNP(in_dim, out_dim, dropout=dropout, **kw)
    if name == "mlp":
        return MLP(in_dim, kw.get("hidden", 64), out_dim, dropout=dropout)
    raise KeyError(f"unknown victim {name!r}; one of {', '.join(VICTIMS)}")
