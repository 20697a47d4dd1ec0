"""Train many victims of one architecture at once, on one graph.

The corrected protocol trains every hyper-parameter setting on every cross-validation fold
of every poisoned dataset: thousands of small models on the same graph and features. Trained
one by one on a CPU, most of each epoch is overhead (a Python loop, autograd bookkeeping,
the transpose of every sparse matrix in the backward pass) rather than arithmetic.

:class:`VictimEnsemble` wraps ``M`` ordinary victims from :func:`~.victims.build_victim` (PyG
layers, their own initial weights) and runs their forward passes as one batched computation:
the first layer as one sparse product per member (each member draws its own dropout mask on
the stored feature entries), every later layer batched over members — one sparse ``Â``
product for all hidden states, one ``einsum`` for the per-member weights, one attention
softmax over ``members × heads`` for GAT. :func:`fit_ensemble` trains them with one Adam
parameter group per member (own learning rate and weight decay), each with its own training
and validation nodes, its own early stopping on the validation loss and its own best-weight
restore — the rules of :func:`graphtrust.training.fit`. A member whose patience runs out
leaves the batch, so late epochs cost only what is still training.

The members stay real PyG modules: after training, ``ensemble.members[m]`` is victim ``m``
with its restored weights, and the batched forward equals each member's own forward (tested
for all four architectures). Only the random numbers differ from sequential training: the
dropout masks are drawn for the batch, independently per member and element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import add_self_loops, remove_self_loops
from torch_geometric.utils import softmax as segment_softmax

from ..graph import SparseMatrix, normalized_csr
from ..models import MLP
from ..threads import adapt
from .victims import APPNP, GAT, FastGCN

__all__ = ["GraphInputs", "VictimEnsemble", "MemberResult", "fit_ensemble"]


class _Layer:
    """One message-passing layer restricted to the nodes whose output is needed.

    ``adj``: ``Â[out_nodes, in_nodes]`` (GCN, APPNP); ``src``, ``dst``: the self-looped edges
    into ``out_nodes`` in local indices (GAT); ``num_out``: ``|out_nodes|``.
    """

    def __init__(self, adj: SparseMatrix, src: torch.Tensor, dst: torch.Tensor, num_out: int):
        self.adj, self.src, self.dst, self.num_out = adj, src, dst, num_out


class _Plan:
    """The computation a ``hops``-layer GNN needs for outputs at ``targets`` only.

    ``sets[0] = targets``, ``sets[k]`` = ``sets[k-1]`` and its neighbours: the receptive field.
    ``x`` holds the feature rows of ``sets[hops]``; ``layers[l]`` maps layer ``l``'s input
    rows ``sets[hops-l]`` to its output rows ``sets[hops-l-1]``. The products use the rows
    of the *global* ``Â`` and the global edge list, so the outputs equal the full forward's.
    """

    def __init__(self, inputs: GraphInputs, targets: torch.Tensor | None, hops: int):
        n = inputs.num_nodes
        if targets is None:  # the whole graph
            self.targets = None
            self.x, self.x_sparse = inputs.x, inputs.x_sparse
            full = _Layer(inputs.adj, inputs.src, inputs.dst, n)
            self.layers = [full] * hops
            self.out_rows: list[torch.Tensor | None] = [None] * hops
            return
        targets = targets.to(inputs.device).long().unique()
        self.targets = targets
        sets = [targets]
        for _ in range(hops):
            mask = torch.zeros(n, dtype=torch.bool, device=inputs.device)
            mask[sets[-1]] = True
            mask[inputs.src[mask[inputs.dst]]] = True
            sets.append(mask.nonzero().view(-1))
        rows = inputs.x_dense[sets[hops]]
        self.x, self.x_sparse = (None, SparseMatrix(rows)) if inputs.x_sparse is not None else (rows, None)
        self.layers, self.out_rows = [], []
        for layer in range(hops):
            inp, out = sets[hops - layer], sets[hops - layer - 1]
            local_in = torch.full((n,), -1, dtype=torch.long, device=inputs.device)
            local_in[inp] = torch.arange(inp.numel(), device=inputs.device)
            local_out = torch.full((n,), -1, dtype=torch.long, device=inputs.device)
            local_out[out] = torch.arange(out.numel(), device=inputs.device)
            keep = local_out[inputs.dst] >= 0
            src, dst = local_in[inputs.src[keep]], local_out[inputs.dst[keep]]
            r, c, v = inputs.adj_coo
            k2 = local_out[r] >= 0
            adj = torch.sparse_coo_tensor(torch.stack([local_out[r[k2]], local_in[c[k2]]]), v[k2],
                                          (out.numel(), inp.numel()), check_invariants=False).coalesce()
            self.layers.append(_Layer(SparseMatrix(adj), src, dst, out.numel()))
            self.out_rows.append(local_in[out])


class GraphInputs:
    """What the batched forward needs of one graph, prepared once.

    ``x: (N, D)`` dense or sparse CSR features, ``edge_index: (2, E)``. Holds the features as
    a :class:`~graphtrust.graph.SparseMatrix` when sparse, ``Â`` (GCN-normalised, self-loops)
    for GCN and APPNP, and the self-looped edge list GAT's ``GATConv`` uses.
    :meth:`plan` restricts a forward pass to the receptive field of some nodes (cached).
    """

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor):
        self.num_nodes = x.size(0)
        self.device = x.device
        if x.layout == torch.sparse_csr:
            self.x, self.x_sparse = None, SparseMatrix(x)
            self.x_dense = x.to_dense()
        else:
            self.x, self.x_sparse, self.x_dense = x, None, x
        a = normalized_csr(edge_index, self.num_nodes).to(x.device)
        self.adj = SparseMatrix(a, symmetric=True)
        rows = torch.repeat_interleave(torch.arange(self.num_nodes, device=x.device), self.adj.crow.diff())
        self.adj_coo = (rows, self.adj.col, self.adj.values)
        ei, _ = remove_self_loops(edge_index.to(x.device))
        ei, _ = add_self_loops(ei, num_nodes=self.num_nodes)
        self.src, self.dst = ei[0], ei[1]
        self._plans: dict[tuple, _Plan] = {}

    def plan(self, targets: torch.Tensor | None, hops: int) -> _Plan:
        """The forward restricted to outputs at ``targets`` (``None``: all nodes), cached."""
        key = (None if targets is None else tuple(targets.view(-1).tolist()), hops)
        if key not in self._plans:
            if len(self._plans) > 64:
                self._plans.clear()
            self._plans[key] = _Plan(self, targets, hops)
        return self._plans[key]


def _dropout(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout from uniform draws (several times faster than ``bernoulli_`` on CPU)."""
    if not training or p == 0.0:
        return h
    return h * (torch.rand_like(h) >= p).to(h.dtype) * (1.0 / (1.0 - p))


class VictimEnsemble(nn.Module):
    """``M`` victims of one architecture and dropout rate, evaluated as one batch.

    ``members``: modules from :func:`~.victims.build_victim` (``FastGCN``, ``GAT``, ``APPNP``
    or ``MLP``), all of the same class, sizes and dropout. ``forward(inputs, active)`` returns
    logits ``(len(active), N, C)`` for the members listed in ``active`` (default: all).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        kinds = {type(m) for m in members}
        if len(kinds) != 1:
            raise ValueError(f"all members must share one architecture, got {sorted(k.__name__ for k in kinds)}")
        self.members = nn.ModuleList(members)
        self.kind = type(members[0])
        if self.kind not in (FastGCN, GAT, APPNP, MLP):
            raise TypeError(f"no batched forward for {self.kind.__name__}")
        shapes = {tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in members}
        if len(shapes) != 1:
            raise ValueError("all members must have the same parameter shapes")
        drops = {self._dropout_of(m) for m in members}
        if len(drops) != 1:
            raise ValueError(f"all members must share one dropout rate, got {sorted(drops)}")
        self.p = drops.pop()

    @staticmethod
    def _dropout_of(m: nn.Module) -> float:
        return float(m.mlp.dropout if isinstance(m, APPNP) else m.dropout)

    def __len__(self) -> int:
        return len(self.members)

    # -- building blocks ------------------------------------------------------------------
    def _first(self, plan: _Plan, weights: list[torch.Tensor]) -> torch.Tensor:
        """``[dropout(X) W_m^T]_m`` side by side: ``(rows, sum of widths)``; own mask per member."""
        if not self.training or self.p == 0.0:
            w = torch.cat(weights, 0).t()
            return plan.x_sparse.matmul(w) if plan.x_sparse is not None else plan.x @ w
        outs = []
        for w in weights:
            if plan.x_sparse is not None:
                v = plan.x_sparse.values
                outs.append(plan.x_sparse.matmul(w.t(), _dropout(v, self.p, True)))
            else:
                outs.append(_dropout(plan.x, self.p, True) @ w.t())
        return torch.cat(outs, 1)

    @staticmethod
    def _per_member(h: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        """``(R, M, K) -> (R, M, C)`` with member ``m``'s ``(C, K)`` weight."""
        return torch.bmm(h.transpose(0, 1), torch.stack(weights).transpose(1, 2)).transpose(0, 1)

    def _attention(self, layer: _Layer, h: torch.Tensor, att_src: torch.Tensor, att_dst: torch.Tensor,
                   bias: torch.Tensor, out_rows: torch.Tensor | None) -> torch.Tensor:
        """``GATConv`` message passing: ``(rows_in, H, D) -> (rows_out, H·D)``, ``H`` heads over all members.

        ``out_rows``: where the output rows sit among the input rows (``None``: the same rows).
        """
        a_src = (h * att_src).sum(-1)
        h_dst = h if out_rows is None else h[out_rows]
        a_dst = (h_dst * att_dst).sum(-1)
        alpha = F.leaky_relu(a_src[layer.src] + a_dst[layer.dst], 0.2)
        alpha = segment_softmax(alpha, layer.dst, num_nodes=layer.num_out)
        alpha = _dropout(alpha, self.p, self.training)
        out = h.new_zeros(layer.num_out, *h.shape[1:]).index_add_(0, layer.dst, h[layer.src] * alpha.unsqueeze(-1))
        return out.reshape(out.size(0), -1) + bias

    # -- forward --------------------------------------------------------------------------
    @property
    def hops(self) -> int:
        """Receptive field in hops; -1 for APPNP, whose ``K`` propagation steps reach the whole graph."""
        return {FastGCN: 2, GAT: 2, MLP: 0, APPNP: -1}[self.kind]

    def forward(self, inputs: GraphInputs, active: Sequence[int] | None = None,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(len(active), N, C)``, or ``(len(active), len(targets), C)`` for the sorted
        unique ``targets`` only (computed on their receptive field)."""
        ms = [self.members[i] for i in (range(len(self.members)) if active is None else active)]
        k = len(ms)
        hops = self.hops
        if hops < 0 and targets is not None:
            return self.forward(inputs, active)[:, targets.long().unique()]
        plan = inputs.plan(targets, max(hops, 0))
        if self.kind is FastGCN:
            c1, c2 = [m.convs[0] for m in ms], [m.convs[1] for m in ms]
            l1, l2 = plan.layers
            h = self._first(plan, [c.lin.weight for c in c1])
            h = F.relu(l1.adj.matmul(h) + torch.cat([c.bias for c in c1]))
            h = _dropout(h, self.p, self.training).view(l1.num_out, k, -1)
            out = self._per_member(h, [c.lin.weight for c in c2]).reshape(l1.num_out, -1)
            out = (l2.adj.matmul(out) + torch.cat([c.bias for c in c2])).view(l2.num_out, k, -1)
        elif self.kind in (MLP, APPNP):
            mlps = [m.mlp if self.kind is APPNP else m for m in ms]
            h = self._first(plan, [m.lins[0].weight for m in mlps]) + torch.cat([m.lins[0].bias for m in mlps])
            rows = h.size(0)
            h = _dropout(F.relu(h), self.p, self.training).view(rows, k, -1)
            out = self._per_member(h, [m.lins[1].weight for m in mlps]) + torch.stack([m.lins[1].bias for m in mlps])
            if self.kind is APPNP:
                prop = ms[0].prop
                h0 = out.reshape(rows, -1)
                z = h0
                for _ in range(prop.K):
                    z = (1 - prop.alpha) * inputs.adj.matmul(z) + prop.alpha * h0
                out = z.view(rows, k, -1)
        else:  # GAT
            c1, c2 = [m.conv1 for m in ms], [m.conv2 for m in ms]
            l1, l2 = plan.layers
            heads, d = c1[0].heads, c1[0].out_channels
            h = self._first(plan, [c.lin.weight for c in c1])
            h = h.view(h.size(0), k * heads, d)
            h = self._attention(l1, h, torch.cat([c.att_src for c in c1], 1), torch.cat([c.att_dst for c in c1], 1),
                                torch.cat([c.bias for c in c1]), plan.out_rows[0])
            h = _dropout(F.elu(h), self.p, self.training).view(l1.num_out, k, -1)
            h = self._per_member(h, [c.lin.weight for c in c2])  # (rows, M, C): one head per member
            out = self._attention(l2, h, torch.cat([c.att_src for c in c2], 1),
                                  torch.cat([c.att_dst for c in c2], 1), torch.cat([c.bias for c in c2]),
                                  plan.out_rows[1])
            out = out.view(l2.num_out, k, -1)
        return out.transpose(0, 1)


@dataclass(frozen=True)
class MemberResult:
    """One member's outcome; the fields of :class:`graphtrust.training.FitResult` the protocols use."""

    best_epoch: int
    epochs_run: int
    val_loss: float
    val_acc: float
    test_acc: float


def _flat(index_sets: Sequence[torch.Tensor], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(member ids, node ids, weight 1/|set|) of all (member, node) pairs."""
    members = torch.cat([torch.full((s.numel(),), i, dtype=torch.long) for i, s in enumerate(index_sets)])
    nodes = torch.cat([s.view(-1).long().cpu() for s in index_sets])
    w = torch.cat([torch.full((s.numel(),), 1.0 / max(s.numel(), 1)) for s in index_sets])
    return members.to(device), nodes.to(device), w.to(device)


def fit_ensemble(
    ensemble: VictimEnsemble,
    inputs: GraphInputs,
    y: torch.Tensor,
    train: Sequence[torch.Tensor],
    val: Sequence[torch.Tensor],
    test: Sequence[torch.Tensor],
    *,
    lr: Sequence[float],
    weight_decay: Sequence[float],
    epochs: int = 200,
    patience: int | None = 50,
    select: str = "loss",
    window: int | None = None,
) -> list[MemberResult]:
    """Train every member on its own nodes; early-stop each on its own validation set.

    ``y: (N,)`` labels shared by all members, or ``(M, N)`` one row per member. ``train``,
    ``val``, ``test``, ``lr``, ``weight_decay``: one entry per member. Same rules as
    :func:`graphtrust.training.fit`: Adam with L2 weight decay, cross-entropy on the member's
    training nodes, the weights of the epoch with the lowest validation loss restored at the
    end; a member with an empty validation set (or ``patience=None``) trains for all
    ``epochs`` and keeps its last weights.

    ``select="accuracy"`` restores the epoch of the highest validation *accuracy* instead
    (ties: the earliest). ``window=w`` replaces the patience rule by the label-poisoning
    authors' one: a member stops at the first epoch after ``w`` whose validation accuracy
    is below the mean of its previous ``w`` epochs.
    """
    if select not in ("loss", "accuracy"):
        raise ValueError(f"select must be 'loss' or 'accuracy', got {select!r}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    m = len(ensemble)
    for name, seq in (("train", train), ("val", val), ("test", test), ("lr", lr), ("weight_decay", weight_decay)):
        if len(seq) != m:
            raise ValueError(f"{name} needs one entry per member ({m}), got {len(seq)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    n = inputs.num_nodes
    if y.shape not in ((n,), (m, n)):
        raise ValueError(f"y must have shape ({n},) or ({m}, {n}), got {tuple(y.shape)}")
    for name, seq in (("train", train), ("val", val), ("test", test)):
        for s in seq:
            if s.numel() and (int(s.min()) < 0 or int(s.max()) >= n):
                raise ValueError(f"{name} indices out of range for {n} nodes")
    if any(s.numel() == 0 for s in train):
        raise ValueError("every member needs a non-empty training set")
    dev = inputs.device
    y = (y if y.dim() == 2 else y.expand(m, n)).to(dev)
    opt = torch.optim.Adam([{"params": list(ensemble.members[i].parameters()), "lr": lr[i],
                             "weight_decay": weight_decay[i]} for i in range(m)])
    tr, va = _flat(train, dev), _flat(val, dev)
    uses_val = [val[i].numel() > 0 and patience is not None for i in range(m)]
    best_loss = [math.inf] * m
    best_score = [-math.inf] * m  # what ``select`` maximises: −loss or accuracy
    history: list[list[float]] = [[] for _ in range(m)]
    best_epoch, waited, epochs_run = [0] * m, [0] * m, [0] * m
    best_state: list[dict[str, torch.Tensor] | None] = [None] * m
    targets = torch.cat([s.view(-1) for s in (*train, *val)]).to(dev).long().unique()
    where = torch.full((n,), -1, dtype=torch.long, device=dev)
    where[targets] = torch.arange(targets.numel(), device=dev)
    active = list(range(m))
    for epoch in range(1, epochs + 1):
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        pos = torch.full((m,), -1, dtype=torch.long, device=dev)
        pos[active] = torch.arange(len(active), device=dev)
        ensemble.train()
        opt.zero_grad(set_to_none=True)
        logits = ensemble(inputs, active, targets)  # (|active|, |targets|, C)
        keep = pos[tr[0]] >= 0
        mem, node, w = tr[0][keep], tr[1][keep], tr[2][keep]
        logp = F.log_softmax(logits[pos[mem], where[node]], -1)
        loss = -(logp.gather(1, y[mem, node].view(-1, 1)).view(-1) * w).sum()
        loss.backward()
        opt.step()
        for i in active:
            epochs_run[i] = epoch
        if any(uses_val[i] for i in active):
            ensemble.eval()
            with torch.no_grad():
                logits = ensemble(inputs, active, targets)
                keep = pos[va[0]] >= 0
                mem, node, w = va[0][keep], va[1][keep], va[2][keep]
                logp = F.log_softmax(logits[pos[mem], where[node]], -1)
                nll = -logp.gather(1, y[mem, node].view(-1, 1)).view(-1)
                val_loss = torch.zeros(m, device=dev).index_add_(0, mem, nll * w)
                hit = (logp.argmax(1) == y[mem, node]).to(w.dtype)
                val_acc = torch.zeros(m, device=dev).index_add_(0, mem, hit * w)
            val_loss, val_acc = val_loss.tolist(), val_acc.tolist()
        still = []
        for i in active:
            if not uses_val[i]:
                best_epoch[i] = epoch
                still.append(i)
                continue
            score = val_acc[i] if select == "accuracy" else -val_loss[i]
            if score > best_score[i]:
                best_score[i], best_loss[i], best_epoch[i], waited[i] = score, val_loss[i], epoch, 0
                best_state[i] = {k: v.detach().clone() for k, v in ensemble.members[i].state_dict().items()}
            else:
                waited[i] += 1
            if window is not None:
                past = history[i][-window:]
                history[i].append(val_acc[i])
                if len(past) < window or val_acc[i] >= sum(past) / window:
                    still.append(i)
            elif waited[i] < patience:
                still.append(i)
        active = still
        if not active:
            break
    for i in range(m):
        if best_state[i] is not None:
            ensemble.members[i].load_state_dict(best_state[i])
    ensemble.eval()
    with torch.no_grad():
        pred = ensemble(inputs).argmax(-1)  # (M, N)
    out = []
    for i in range(m):
        acc = [float((pred[i, s] == y[i, s]).float().mean()) if s.numel() else math.nan for s in (val[i], test[i])]
        out.append(MemberResult(best_epoch[i], epochs_run[i], best_loss[i] if uses_val[i] else math.nan, *acc))
    return out
