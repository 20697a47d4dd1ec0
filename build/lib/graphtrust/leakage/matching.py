"""Gradient matching: find a graph whose gradient equals the shared one (DLG, iDLG).

The server holds the shared gradient ``g* = ∇_θ L(A, X, y)`` and the model. DLG (Zhu et
al., 2019) optimises a dummy input until its gradient matches,

    min_{A, X, y}  D(A, X, y) = Σ_layers ‖∇_θ L(A, X, y) − g*‖² / ‖g*‖²,

by L-BFGS, differentiating through the gradient (second order). For graphs the dummy is
relaxed: ``A = sigmoid((T + Tᵀ)/2)`` off the diagonal (edge scores in (0, 1)), ``X =
softmax(U)`` per node when features are one-hot (the attacker knows the feature schema:
atom types), ``X = U`` otherwise, and the soft label ``y = softmax(ℓ)``. iDLG (Zhao et
al., 2020) reads the label from the last bias gradient instead. GraphDLG's feature stage
uses the same objective with the structure held fixed (:func:`match`, ``adj`` given).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..threads import adapt
from .leaks import check_gradients, recover_label
from .model import GraphClassifier

__all__ = ["Reconstruction", "gradient_of", "gradient_distance", "match", "dlg", "idlg"]


@dataclass
class Reconstruction:
    """What an attack returns: edge scores ``adj: (n, n)`` in [0, 1] (symmetric, zero
    diagonal), node features ``x: (n, F)`` and the label."""

    adj: torch.Tensor
    x: torch.Tensor
    label: int
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


def gradient_of(model: GraphClassifier, adj: torch.Tensor, x: torch.Tensor, target: torch.Tensor,
                create_graph: bool = True) -> list[torch.Tensor]:
    """Gradient of the cross-entropy against the soft label ``target: (C,)`` for a
    candidate ``(adj, x)``, differentiable in both when ``create_graph``."""
    logp = F.log_softmax(model(adj, x), dim=-1)
    loss = -(target * logp).sum()
    return list(torch.autograd.grad(loss, list(model.parameters()), create_graph=create_graph))


def gradient_distance(cand: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ ‖g − g*‖² / Σ ‖g*‖²`` over all parameters (DLG's distance, scale-free)."""
    num = sum(((a - b) ** 2).sum() for a, b in zip(cand, grads))
    return num / sum((b * b).sum() for b in grads).clamp_min(1e-30)


def _sym_scores(t: torch.Tensor) -> torch.Tensor:
    n = t.size(0)
    return torch.sigmoid(0.5 * (t + t.t())) * (1 - torch.eye(n, dtype=t.dtype, device=t.device))


def match(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int, *, adj: torch.Tensor | None = None,
          adj_logits: torch.Tensor | None = None, x_init: torch.Tensor | None = None, label: int | None = None,
          onehot: bool = True, iters: int = 100, seed: int = 0, pooled: torch.Tensor | None = None,
          pooled_weight: float = 1.0) -> Reconstruction:
    """Gradient matching by L-BFGS (strong-Wolfe line search).

    ``adj`` fixes the structure (scores or 0/1, ``(n, n)``); otherwise it is optimised from
    ``adj_logits`` (default: small random). ``x_init: (n, F)`` starts the features (for
    one-hot features: probabilities, turned into logits); default random. ``label`` fixes
    the label; otherwise a soft label is optimised (DLG). ``pooled: (hidden,)`` adds the
    term ``pooled_weight · ‖h_G(A, X) − pooled‖² / ‖pooled‖²`` (the leaked embedding).
    """
    grads = [g.detach() for g in check_gradients(model, grads)]
    t0 = time.perf_counter()
    p0 = next(model.parameters())
    dt, dev = p0.dtype, p0.device
    n, f, c = num_nodes, model.gcn[0].size(0), model.num_classes
    if n < 1:
        raise ValueError(f"num_nodes must be positive, got {n}")
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=dt)).to(dev)

    variables = []
    if adj is None:
        t = (adj_logits.detach().to(dt).clone(memory_format=torch.contiguous_format) if adj_logits is not None else rnd(n, n, scale=0.1)).requires_grad_()
        variables.append(t)
    else:
        if tuple(adj.shape) != (n, n):
            raise ValueError(f"adj has shape {tuple(adj.shape)}, expected ({n}, {n})")
        fixed_adj = adj.detach().to(dt)
    if x_init is not None:
        if tuple(x_init.shape) != (n, f):
            raise ValueError(f"x_init has shape {tuple(x_init.shape)}, expected ({n}, {f})")
        u = (x_init.to(dt).clamp_min(1e-4).log() if onehot else x_init.to(dt)).detach().clone(memory_format=torch.contiguous_format)
    else:
        u = rnd(n, f)
    u.requires_grad_()
    variables.append(u)
    if label is None:
        ell = rnd(c).requires_grad_()
        variables.append(ell)
    else:
        if not 0 <= label < c:
            raise ValueError(f"label {label} outside 0..{c - 1}")
        target_fixed = F.one_hot(torch.tensor(label), c).to(dt).to(dev)

    def current():
        a = _sym_scores(t) if adj is None else fixed_adj
        x = torch.softmax(u, -1) if onehot else u
        y = torch.softmax(ell, -1) if label is None else target_fixed
        return a, x, y

    def objective():
        a, x, y = current()
        loss = gradient_distance(gradient_of(model, a, x, y), grads)
        if pooled is not None and pooled_weight > 0:
            loss = loss + pooled_weight * ((model.embed(a, x) - pooled) ** 2).sum() / (pooled ** 2).sum().clamp_min(1e-30)
        return loss

    opt = torch.optim.LBFGS(variables, lr=1.0, max_iter=iters, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure():
        adapt()  # thread count follows the machine's load (graphtrust.threads)
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    start = float(objective().detach())
    opt.step(closure)
    a, x, y = current()
    final = float(objective().detach())
    lab = int(y.argmax())
    return Reconstruction(a.detach(), x.detach(), lab, time.perf_counter() - t0,
                          {"start_loss": start, "final_loss": final, "evaluations": opt.state[opt._params[0]]["func_evals"]})


def _best_of(runs: Sequence[Reconstruction]) -> Reconstruction:
    """The run whose final gradient distance is lowest (what an attacker can compare),
    with the time of all runs and every run's final loss in ``info``."""
    best = min(runs, key=lambda r: r.info["final_loss"])
    best.info = dict(best.info, restarts=len(runs), restart_losses=[r.info["final_loss"] for r in runs])
    best.seconds = sum(r.seconds for r in runs)
    return best


def dlg(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int, *, onehot: bool = True,
        iters: int = 100, seed: int = 0, restarts: int = 1, start: Reconstruction | None = None) -> Reconstruction:
    """DLG: structure, features and soft label jointly. ``restarts`` random starts (seeds
    ``seed·1000 + r``), plus one from ``start`` (a prior's reconstruction: its edge scores as
    logits, its features) when given; the run with the lowest gradient distance wins."""
    return _restarted(model, grads, num_nodes, None, onehot, iters, seed, restarts, start)


def idlg(model: GraphClassifier, grads: Sequence[torch.Tensor], num_nodes: int, *, onehot: bool = True,
         iters: int = 100, seed: int = 0, restarts: int = 1, start: Reconstruction | None = None) -> Reconstruction:
    """iDLG: DLG with the label read from the last bias gradient (same restarts and start)."""
    return _restarted(model, grads, num_nodes, recover_label(model, grads), onehot, iters, seed, restarts, start)


def _restarted(model, grads, n, label, onehot, iters, seed, restarts, start):
    if restarts < 0 or (restarts == 0 and start is None):
        raise ValueError(f"need at least one start: restarts={restarts}, start={'given' if start else None}")
    seeds = [seed] if restarts == 1 else [seed * 1000 + r for r in range(restarts)]
    runs = [match(model, grads, n, label=label, onehot=onehot, iters=iters, seed=s) for s in seeds]
    if start is not None:
        logits = torch.logit(start.adj.detach().double().clamp(1e-3, 1 - 1e-3))
        runs.append(match(model, grads, n, adj_logits=logits, x_init=start.x, label=label, onehot=onehot,
                          iters=iters, seed=seed))
        runs[-1].info["from_start"] = True
    return _best_of(runs) if len(runs) > 1 else runs[0]
