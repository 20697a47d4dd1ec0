"""Victim models trained from scratch on a (poisoned) graph, and their error rates.

* :func:`gcn_victim` — GCN (ReLU, hidden 16, dropout 0.5, Adam 0.01, weight decay 5e-4,
  200 epochs without early stopping, as in the authors' demo).
* :func:`deepwalk_victim` — DeepWalk embeddings (PyG's ``Node2Vec`` with ``p = q = 1``)
  and a logistic regression on them.
* :func:`features_victim` — logistic regression on the features alone (ignores the graph).

Each returns the misclassification rate on the unlabelled nodes (validation + test).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.index import index2ptr
from torch_geometric.nn import Node2Vec
from torch_geometric.utils import sort_edge_index

from .. import config
from ..models import GCN, LogisticRegression, sparse_features
from ..splits import Split
from ..training import evaluate, fit

__all__ = ["gcn_victim", "deepwalk_victim", "features_victim", "DeepWalk", "uniform_random_walk"]


def _train_only(split: Split) -> Split:
    empty = torch.empty(0, dtype=torch.long)
    return Split(split.train, empty, empty)


#: how a GCN is trained (victims and the self-training surrogate): weight decay 5e-4 on every
#: layer (``ours``) or on the first layer only (``authors``, the Metattack authors' TF code)
RECIPES = {"ours": "all", "authors": "first"}


def gcn_victim(data, split: Split, seed: int = 0, epochs: int = 200, device=None, recipe: str = "ours") -> float:
    """Misclassification rate of a GCN trained on ``data`` (poisoned or clean).

    ReLU, 16 hidden units, biases, dropout 0.5, Adam 0.01, weight decay 5e-4 as ``recipe``
    says (:data:`RECIPES`), ``epochs`` without early stopping.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; one of {', '.join(RECIPES)}")
    dev = device or config.device()
    config.seed_everything(seed)
    model = GCN(data.num_features, 16, int(data.y.max()) + 1)
    x = sparse_features(data.x).to(dev)
    res = fit(model, x, data.edge_index, data.y, _train_only(split), epochs=epochs, patience=None, device=dev,
              decay=RECIPES[recipe])
    return 1.0 - evaluate(res.model, x, data.edge_index.to(dev), data.y.to(dev), split.unlabelled.to(dev))


def features_victim(data, split: Split, seed: int = 0, epochs: int = 300, device=None) -> float:
    """Misclassification rate of a logistic regression on the node features alone."""
    dev = device or config.device()
    config.seed_everything(seed)
    model = LogisticRegression(data.num_features, int(data.y.max()) + 1)
    x = sparse_features(data.x).to(dev)
    res = fit(model, x, None, data.y, _train_only(split), epochs=epochs, patience=None, lr=0.01, weight_decay=5e-4, device=dev)
    return 1.0 - evaluate(res.model, x, None, data.y.to(dev), split.unlabelled.to(dev))


def uniform_random_walk(rowptr, col, start, walk_length, p=1.0, q=1.0):
    """Uniform random walks (``p = q = 1``): ``(len(start), walk_length + 1)`` node ids.

    A vectorised stand-in for ``pyg-lib``'s walker, which has no wheels for every
    platform. Nodes without neighbours stay where they are.
    """
    if p != 1.0 or q != 1.0:
        raise ValueError("only uniform walks (p = q = 1) are implemented")
    deg = rowptr[1:] - rowptr[:-1]
    walks = [start]
    cur = start
    for _ in range(walk_length):
        d = deg[cur]
        offset = (torch.rand(cur.numel(), device=cur.device) * d).long()
        nxt = col[(rowptr[cur] + offset).clamp_max(col.numel() - 1)]
        cur = torch.where(d > 0, nxt, cur)
        walks.append(cur)
    return torch.stack(walks, 1)


class DeepWalk(Node2Vec):
    """PyG's :class:`~torch_geometric.nn.Node2Vec` with ``p = q = 1`` and our walker.

    Node2Vec's skip-gram model, negative sampling and loss are PyG's; only the random
    walk comes from :func:`uniform_random_walk`, so no compiled extension is needed.
    """

    def __init__(self, edge_index, embedding_dim=128, walk_length=40, context_size=10,
                 walks_per_node=10, num_negative_samples=1, num_nodes=None):
        torch.nn.Module.__init__(self)
        self.random_walk_fn = uniform_random_walk
        self.num_nodes = int(num_nodes if num_nodes is not None else edge_index.max() + 1)
        row, col = sort_edge_index(edge_index, num_nodes=self.num_nodes)
        self.rowptr, self.col = index2ptr(row, self.num_nodes), col
        self.EPS = 1e-15
        assert walk_length >= context_size
        self.embedding_dim = embedding_dim
        self.walk_length = walk_length - 1
        self.context_size = context_size
        self.walks_per_node = walks_per_node
        self.p = self.q = 1.0
        self.num_negative_samples = num_negative_samples
        self.embedding = torch.nn.Embedding(self.num_nodes, embedding_dim)
        self.reset_parameters()


def deepwalk_victim(data, split: Split, seed: int = 0, dim: int = 64, walk_length: int = 20,
                    walks_per_node: int = 10, epochs: int = 10, device=None) -> float:
    """Misclassification rate of logistic regression on DeepWalk embeddings of ``data``."""
    dev = device or config.device()
    config.seed_everything(seed)
    model = DeepWalk(data.edge_index.cpu(), dim, walk_length, 5, walks_per_node, num_nodes=data.num_nodes)
    model.rowptr, model.col = model.rowptr.to(dev), model.col.to(dev)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(epochs):
        for batch in torch.randperm(data.num_nodes, device=dev).split(256):
            opt.zero_grad()
            loss = model.loss(model.pos_sample(batch), model.neg_sample(batch))
            loss.backward()
            opt.step()
    with torch.no_grad():
        emb = F.normalize(model().detach(), dim=1)
    clf = LogisticRegression(dim, int(data.y.max()) + 1)
    res = fit(clf, emb, None, data.y.to(dev), _train_only(split), epochs=300, patience=None, lr=0.05, weight_decay=1e-4, device=dev)
    return 1.0 - evaluate(res.model, emb, None, data.y.to(dev), split.unlabelled.to(dev))
