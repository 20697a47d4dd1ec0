"""GraphDLG's structure stage: a decoder, trained on auxiliary graphs, from what the server
sees to the adjacency.

The server can *simulate* the client: for any graph it holds, it computes the gradient
that graph would produce under the current global model. On a set of auxiliary graphs it
thus collects pairs (observation, graph) and trains a decoder on them; on the victim's
gradient the decoder returns edge scores. This is an auto-encoder whose encoder is frozen
— the model's own gradient computation — and only the decoder learns. The paper's exact
architecture is unknown to us (see the chapter); this one is ours:

* **observation** ``φ(g)`` (:func:`observation`): the pooled embedding ``h_G`` (exact, by
  the ratio trick), the last GCN layer's weight gradient with column ``k`` divided by
  ``∂L/∂h_G[k]`` — which removes the label and the loss scale and leaves
  ``(1/n) Σ_{i active in unit k} (ĀH_{L-1})_i`` — the lower layers' gradients scaled by
  ``‖∂L/∂h_G‖``, and ``n``;
* **targets in a canonical node order** (:func:`canonical_order`): the gradient is
  invariant to node order, so the decoder cannot output the victim's order; it learns to
  output nodes sorted by (feature, degree, neighbourhood), a function of the graph alone;
* **decoder** (:class:`StructureDecoder`): an MLP from standardised ``φ`` to edge logits
  for all pairs of ``n_max`` slots and feature logits per slot, trained with a weighted
  binary cross-entropy on the first ``n`` slots (plus cross-entropy on the features);
* **retrieval** (:func:`retrieve`): the decoder also keeps its auxiliary graphs, and the
  attack can ask for the ``k`` of them with ``n`` nodes whose simulated gradient (under
  the victim's leaked label) is closest to the victim's — a nearest-neighbour decoder in
  gradient space, which is what makes same-domain auxiliaries valuable.

Two auxiliary sources (:func:`auxiliary_graphs`): ``"random"`` — Erdős–Rényi graphs
matched to the domain's sizes and density, with random one-hot features — and
``"client"`` — real graphs of the same domain (training graphs of other clients).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..progress import progress
from .leaks import check_gradients, recover_pooled
from .model import GraphClassifier, client_gradient

__all__ = ["Graph", "auxiliary_graphs", "observation", "canonical_order", "StructureDecoder", "simulate",
           "train_decoder", "retrieve"]

Graph = tuple[torch.Tensor, torch.Tensor, int]  # (adj (n, n) 0/1, x (n, F), label)


def canonical_order(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A node order that depends on the graph only (up to ties between look-alike nodes):
    by feature (argmax), then degree (descending), then the neighbours' features and
    degrees, then the 2-hop sums."""
    a, xx = adj.double(), x.double()
    deg = a.sum(1, keepdim=True)
    keys = [xx.argmax(1, keepdim=True).double(), -deg, -(a @ xx), -(a @ deg), -(a @ a @ deg)]
    k = torch.cat(keys, 1).cpu().numpy()
    return torch.as_tensor(np.lexsort(k.T[::-1]), dtype=torch.long)


def auxiliary_graphs(kind: str, *, graphs: Sequence[Graph] = (), count: int = 100, sizes: Sequence[int] = (),
                     density: float | None = None, num_features: int | None = None, num_classes: int = 2,
                     seed: int = 0) -> list[Graph]:
    """Auxiliary graphs for the decoder.

    ``kind="client"``: the first ``count`` of ``graphs`` (same-domain graphs the attacker
    holds; pass ones disjoint from the victims). ``kind="random"``: ``count`` Erdős–Rényi
    graphs, node counts drawn from ``sizes``, edge probability giving ``density`` edges per
    node on average, uniform random one-hot features over ``num_features`` and random labels.
    """
    if count < 1:
        raise ValueError("need at least one auxiliary graph")
    if kind == "client":
        if not graphs:
            raise ValueError("client-side auxiliaries need graphs: the auxiliary set is empty")
        return list(graphs[:count])
    if kind != "random":
        raise ValueError(f"kind must be 'random' or 'client', got {kind!r}")
    if not sizes or density is None or num_features is None:
        raise ValueError("random auxiliaries need sizes, density and num_features")
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.as_tensor(list(sizes))
    out = []
    for _ in range(count):
        n = int(sizes[torch.randint(len(sizes), (1,), generator=gen)])
        p = min(1.0, 2 * density / max(n - 1, 1))
        a = (torch.rand(n, n, generator=gen) < p).double().triu(1)
        a = a + a.t()
        x = F.one_hot(torch.randint(num_features, (n,), generator=gen), num_features).double()
        out.append((a, x, int(torch.randint(num_classes, (1,), generator=gen))))
    return out


def observation(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int) -> torch.Tensor:
    """The decoder's input ``φ: (D,)`` from a single-graph gradient (see the module docstring)."""
    g = check_gradients(model, grads)
    k = len(model.gcn)
    h_g = recover_pooled(model, g)
    d_hg = model.head1.weight.detach().t() @ g[k + 1]  # ∂L/∂h_G = W₁ᵀ ∇b₁
    scale = d_hg.abs().max().clamp_min(1e-30)
    col = torch.where(d_hg.abs() > 1e-6 * scale, d_hg, torch.full_like(d_hg, float("inf")))
    top = g[k - 1] / col[None, :]
    lower = [gi.flatten() / d_hg.norm().clamp_min(1e-30) for gi in g[: k - 1]]
    n = torch.tensor([float(num_nodes)], dtype=h_g.dtype, device=h_g.device)
    return torch.cat([h_g, top.flatten(), *lower, n]).detach()


class StructureDecoder(nn.Module):
    """MLP from a standardised observation to edge logits ``(n_max, n_max)`` (symmetric)
    and feature logits ``(n_max, F)`` in canonical slot order."""

    def __init__(self, in_dim: int, n_max: int, num_features: int, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.n_max, self.num_features = n_max, num_features
        self.iu = torch.triu_indices(n_max, n_max, 1)
        out = self.iu.size(1) + n_max * num_features
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def forward(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi: (B, D)`` → edge logits ``(B, n_max, n_max)``, feature logits ``(B, n_max, F)``."""
        o = self.net((phi - self.mean) / self.std)
        m = self.iu.size(1)
        e = o.new_zeros(o.size(0), self.n_max, self.n_max)
        e[:, self.iu[0], self.iu[1]] = o[:, :m]
        e = e + e.transpose(1, 2)
        return e, o[:, m:].reshape(-1, self.n_max, self.num_features)

    @torch.no_grad()
    def decode(self, phi: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge scores ``(n, n)`` (zero diagonal) and feature probabilities ``(n, F)``."""
        if num_nodes > self.n_max:
            raise ValueError(f"the decoder has {self.n_max} node slots; the graph has {num_nodes} nodes")
        self.eval()
        e, f = self(phi[None].to(self.mean.dtype))
        s = torch.sigmoid(e[0, :num_nodes, :num_nodes])
        s.fill_diagonal_(0.0)
        return s, torch.softmax(f[0, :num_nodes], -1)


def _targets(graphs: Sequence[Graph], n_max: int):
    adj = torch.zeros(len(graphs), n_max, n_max)
    feat = torch.full((len(graphs), n_max), -1, dtype=torch.long)
    mask = torch.zeros(len(graphs), n_max, n_max)
    for i, (a, x, _) in enumerate(graphs):
        n = a.size(0)
        o = canonical_order(a, x)
        adj[i, :n, :n] = a[o][:, o].float()
        feat[i, :n] = x[o].argmax(1)
        mask[i, :n, :n] = 1.0 - torch.eye(n)
    return adj, feat, mask


def simulate(model: GraphClassifier, aux: Sequence[Graph], observe=None) -> tuple[list[Graph], torch.Tensor]:
    """The observations ``φ: (K, D)`` of the auxiliary graphs under ``model`` (``observe``,
    default :func:`observation`, of each graph's simulated gradient) and the ``K`` graphs
    they belong to. A trained model can have dead units, and then some graphs leak no
    pooled embedding: those are skipped; none left is an error."""
    observe = observation if observe is None else observe
    kept, obs = [], []
    for g in aux:
        try:
            obs.append(observe(model, client_gradient(model, [g]), g[0].size(0)))
        except ValueError as err:
            if "does not leak" not in str(err):
                raise
            continue
        kept.append(g)
    if not kept:
        raise ValueError(f"the pooled embedding does not leak for any of the {len(aux)} auxiliary graphs under "
                         "this model (every bias gradient of the head is zero): nothing to learn from")
    return kept, torch.stack(obs)


def train_decoder(model: GraphClassifier, aux: Sequence[Graph], *, n_max: int, epochs: int = 200,
                  hidden: int = 512, lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 64,
                  feature_weight: float = 1.0, seed: int = 0, show_progress: bool = True,
                  observe=None) -> StructureDecoder:
    """Simulate each auxiliary graph's gradient under ``model``, then fit a
    :class:`StructureDecoder` (Adam, weighted BCE on edges, CE on features).

    ``observe(model, grads, n) -> (D,)`` replaces :func:`observation` (the chapter's
    "prior only" reference passes one that returns ``n`` alone)."""
    if not aux:
        raise ValueError("the auxiliary set is empty")
    too_big = [a.size(0) for a, _, _ in aux if a.size(0) > n_max]
    if too_big:
        raise ValueError(f"{len(too_big)} auxiliary graphs have more than n_max={n_max} nodes (largest {max(too_big)})")
    t0 = time.perf_counter()
    bank = list(aux)
    aux, phi = simulate(model, aux, observe)
    phi = phi.float()
    simulated = time.perf_counter() - t0
    adj, feat, mask = _targets(aux, n_max)
    torch.manual_seed(seed)
    dec = StructureDecoder(phi.size(1), n_max, model.gcn[0].size(0), hidden=hidden)
    dec.mean.copy_(phi.mean(0))
    dec.std.copy_(phi.std(0).clamp_min(1e-6) if len(aux) > 1 else torch.ones_like(phi[0]))
    dens = float((adj * mask).sum() / mask.sum())
    pos_weight = torch.tensor((1 - dens) / max(dens, 1e-6)) ** 0.5
    opt = torch.optim.Adam(dec.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in progress(range(epochs), desc="decoder", enabled=show_progress):
        dec.train()
        order = torch.randperm(len(aux), generator=gen)
        total = 0.0
        for s in range(0, len(aux), batch_size):
            b = order[s: s + batch_size]
            e, f = dec(phi[b])
            l_e = F.binary_cross_entropy_with_logits(e, adj[b], weight=mask[b], pos_weight=pos_weight,
                                                     reduction="sum") / mask[b].sum()
            l_f = F.cross_entropy(f.reshape(-1, f.size(-1)), feat[b].reshape(-1), ignore_index=-1)
            loss = l_e + feature_weight * l_f
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        losses.append(total / len(aux))
    dec.eval()
    dec.bank = [(a.double(), x.double()) for a, x, _ in bank]  # for retrieval (see graphdlg)
    dec.info = {"simulate_seconds": simulated, "train_seconds": time.perf_counter() - t0 - simulated,
                "final_loss": losses[-1], "auxiliary": len(aux), "without_leak": len(bank) - len(aux)}
    return dec.double()


def retrieve(model: GraphClassifier, grads: Sequence[torch.Tensor], bank: Sequence[tuple[torch.Tensor, torch.Tensor]],
             num_nodes: int, label: int, k: int = 5) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """The ``k`` graphs of ``bank`` with ``num_nodes`` nodes whose gradient under ``label``
    is closest to ``grads`` (DLG's scale-free distance), as ``(adj, x, distance)``, closest
    first; empty when the bank has no graph of that size."""
    from .matching import gradient_distance

    g = [t.detach() for t in check_gradients(model, grads)]
    out = []
    for a, x in bank:
        if a.size(0) == num_nodes:
            d = float(gradient_distance(client_gradient(model, [(a, x, label)]), g))
            out.append((a, x, d))
    out.sort(key=lambda t: t[2])
    return out[:k]
