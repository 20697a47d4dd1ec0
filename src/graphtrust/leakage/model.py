"""The federated graph classifier whose gradients leak, and the client that shares them.

:class:`GraphClassifier` is the global model of the GraphDLG chapter: ``layers`` GCN
layers on a dense normalised adjacency ``Ā = D^{-1/2}(A+I)D^{-1/2}``,

    H_0 = X,   H_i = σ(Ā H_{i-1} W_i)   (σ = ReLU; the last one optional),

a pooling readout ``h_G = M_p H_L`` (mean: ``M_p = 1ᵀ/n``; sum: ``1ᵀ``), and an MLP head
whose first layer has a bias, ``ŷ = MLP(h_G)``, trained with cross-entropy. Everything is
dense and single-graph, so the adjacency can be a relaxed (real-valued) matrix and
gradients flow into it — what the gradient-matching attacks need.

:func:`client_gradient` is what a FedSGD client shares: the gradient of the loss of its
private graph (or the mean over a batch of graphs) with respect to every parameter, in
the model's parameter order; :func:`defend` applies the two defences of the chapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..graph import normalize_dense

__all__ = ["GraphClassifier", "client_gradient", "defend", "fedsgd", "accuracy"]


class GraphClassifier(nn.Module):
    """Dense GCN → pooling → MLP head, for one graph at a time. Shapes: ``adj: (n, n)``,
    ``x: (n, F)`` → logits ``(C,)``."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, layers: int = 2, head_hidden: int = 32,
                 pooling: str = "mean", last_activation: bool = True):
        super().__init__()
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")
        if layers < 1:
            raise ValueError("need at least one GCN layer")
        dims = [in_dim] + [hidden] * layers
        self.gcn = nn.ParameterList(nn.Parameter(torch.empty(a, b)) for a, b in zip(dims[:-1], dims[1:]))
        for w in self.gcn:
            nn.init.xavier_uniform_(w)
        self.head1 = nn.Linear(hidden, head_hidden)
        self.head2 = nn.Linear(head_hidden, num_classes)
        self.pooling, self.last_activation = pooling, last_activation
        self.num_classes = num_classes

    def node_states(self, adj: torch.Tensor, x: torch.Tensor, normalized: bool = False) -> list[torch.Tensor]:
        """``[H_0, Z_1, H_1, …, Z_L, H_L]`` (pre- and post-activation of every layer)."""
        a = adj if normalized else normalize_dense(adj)
        out = [x]
        h = x
        for i, w in enumerate(self.gcn):
            z = a @ h @ w
            h = F.relu(z) if (i < len(self.gcn) - 1 or self.last_activation) else z
            out += [z, h]
        return out

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(0) if self.pooling == "mean" else h.sum(0)

    def forward(self, adj: torch.Tensor, x: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        h = self.node_states(adj, x, normalized)[-1]
        return self.head2(F.relu(self.head1(self.pool(h))))

    def embed(self, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The pooled graph embedding ``h_G: (hidden,)``."""
        return self.pool(self.node_states(adj, x)[-1])


def client_gradient(model: GraphClassifier, graphs: Sequence[tuple[torch.Tensor, torch.Tensor, int]],
                    create_graph: bool = False) -> list[torch.Tensor]:
    """Mean over ``graphs`` (``(adj, x, label)`` triples) of the loss gradient, per parameter.

    One graph is FedSGD with batch size 1, the setting in which the closed-form leaks hold.
    ``create_graph=True`` keeps the graph so that the result can be differentiated again
    (gradient matching differentiates it with respect to a candidate adjacency/features).
    """
    if not graphs:
        raise ValueError("no graphs given")
    params = list(model.parameters())
    loss = sum(F.cross_entropy(model(a, x)[None], torch.as_tensor([y], device=x.device)) for a, x, y in graphs)
    return list(torch.autograd.grad(loss / len(graphs), params, create_graph=create_graph))


def defend(grads: Sequence[torch.Tensor], noise: float = 0.0, clip: float | None = None, prune: float = 0.0,
           seed: int = 0) -> list[torch.Tensor]:
    """Apply the shared-gradient defences: clip the global norm to ``clip`` and add Gaussian
    noise of standard deviation ``noise · clip`` (DP-SGD style; ``noise`` alone when no
    clip), then zero the smallest ``prune`` fraction of entries by magnitude (top-k pruning)."""
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"prune must lie in [0, 1), got {prune}")
    gen = torch.Generator().manual_seed(seed)
    out = [g.detach().clone() for g in grads]
    if clip is not None:
        total = torch.sqrt(sum((g * g).sum() for g in out))
        scale = min(1.0, clip / max(float(total), 1e-12))
        out = [g * scale for g in out]
    if noise > 0:
        std = noise * (clip if clip is not None else 1.0)
        out = [g + std * torch.randn(g.shape, generator=gen, dtype=g.dtype) for g in out]
    if prune > 0:
        flat = torch.cat([g.abs().flatten() for g in out])
        k = int(prune * flat.numel())
        if k > 0:
            thr = flat.kthvalue(k).values
            out = [torch.where(g.abs() > thr, g, torch.zeros_like(g)) for g in out]
    return out


def fedsgd(model: GraphClassifier, graphs: Sequence[tuple[torch.Tensor, torch.Tensor, int]], rounds: int, *,
           lr: float = 0.01, seed: int = 0,
           transform: Callable[[list[torch.Tensor], int, int], list[torch.Tensor]] | None = None) -> GraphClassifier:
    """``rounds`` rounds of FedSGD with batch size 1, in place: each round one client sends
    the gradient of one of ``graphs`` (a seeded permutation per pass over them) and the
    server applies it with Adam (``lr``). ``transform(grads, pass, j)`` is what the client
    does to its gradient before sending it (a defence, :func:`defend`). Returns ``model``."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if rounds and not graphs:
        raise ValueError("FedSGD needs at least one client graph")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    done, ep = 0, 0
    while done < rounds:
        for j, i in enumerate(torch.randperm(len(graphs), generator=gen).tolist()):
            if done == rounds:
                break
            g = client_gradient(model, [graphs[i]])
            if transform is not None:
                g = transform(g, ep, j)
            for par, gi in zip(model.parameters(), g):
                par.grad = gi
            opt.step()
            done += 1
        ep += 1
    return model


def accuracy(model: GraphClassifier, graphs: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> float:
    """The share of ``graphs`` whose label the model predicts."""
    with torch.no_grad():
        return sum(int(model(a, x).argmax()) == y for a, x, y in graphs) / len(graphs)
