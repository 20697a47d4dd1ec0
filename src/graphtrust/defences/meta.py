"""Adaptive *poisoning* through a defence's training: Meta-PGD.

PR-BCD against a trained defence (:func:`.evaluate.prbcd`) is an evasion attack: it
perturbs the graph the trained model sees at test time. A poisoning attacker changes the
graph the defender *trains* on, so the quantity to differentiate is the model that
training produces, as a function of the graph. Metattack does this for a linearised GCN;
Mujkanovic et al. (NeurIPS 2022) do it for each defence ("Meta-PGD"): unroll the
defence's training as a differentiable function of the edge weights and run projected
gradient descent on those weights.

:class:`UnrolledTraining` is that function as a module: ``forward(x, edge_index,
edge_weight)`` trains a copy of the defence from fixed initial weights ``θ₀`` for ``steps``
Adam steps on the given weighted graph and returns the trained model's logits. Passed as
the *model* of PyG's :class:`~torch_geometric.contrib.nn.PRBCDAttack`, unchanged, it turns
PR-BCD's evasion loop into Meta-PGD with PR-BCD's random blocks, budget projection and
final sampling (:func:`meta_pgd`).

What the attacker is given: the defence's architecture and training recipe (white box),
the graph, the features, the training labels and, for every other node, the clean
defence's predictions (self-training labels, as Meta-Self). It attacks the unlabelled
nodes. The defender then trains as always (:func:`.evaluate.train`: up to ``epochs`` with
early stopping); the attacker's unrolled training is shorter and has no dropout, a
surrogate of it.

Cost: every attack step trains the defence ``steps`` times and differentiates through
all of it (memory grows with ``steps``). Defences whose forward pass is itself a large
dense computation are refused (their registration's ``not_unrolled`` says why;
:data:`NOT_UNROLLED` collects them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch_geometric.data import Data

from .. import config
from ..splits import Split
from .evaluate import DEFENCES, attacker_labels, budget_flips, build, defence, run_prbcd

__all__ = ["UnrolledTraining", "meta_pgd", "NOT_UNROLLED"]

#: defences that :func:`meta_pgd` refuses, and why (each registration's ``not_unrolled``)
NOT_UNROLLED = {name: d.not_unrolled for name, d in DEFENCES.items() if d.not_unrolled}


class UnrolledTraining(nn.Module):
    """A defence's training as a differentiable function of the graph.

    ``forward(x, edge_index, edge_weight) -> (N, C)`` logits of ``model`` after ``steps``
    full-batch Adam steps (``lr``, L2 ``weight_decay`` on every parameter, as
    :func:`graphtrust.training.fit`) on the cross-entropy of the ``train`` nodes, starting
    from the weights ``model`` holds when this module is built (``θ₀``, the same for every
    call). With ``regularize``, a model's ``regularization()`` (RGCN's KL term) is added to
    the loss. Training runs in the model's eval mode (no dropout), so the function is
    deterministic. A meta-gradient that is not finite raises ``FloatingPointError`` (it
    would otherwise reach PR-BCD's sampling as NaN weights).

    When ``edge_weight`` requires a gradient the inner steps keep their graph
    (``create_graph``) and the logits carry the meta-gradient; otherwise the inner steps
    are plain and the logits are detached (PR-BCD's monitoring and final sampling).
    """

    def __init__(self, model: nn.Module, y: torch.Tensor, train: torch.Tensor, *, steps: int = 100,
                 lr: float = 0.01, weight_decay: float = 5e-4, regularize: bool = True):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps!r}")
        self.model, self.steps, self.lr, self.weight_decay = model, int(steps), float(lr), float(weight_decay)
        self.regularize = regularize
        self.register_buffer("y", y)
        self.register_buffer("train_idx", train)
        self.theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
        for p in model.parameters():  # the attack reads gradients of the edge weights only
            p.requires_grad_(False)

    def _check_finite(self, grad: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(grad).all():
            raise FloatingPointError(
                f"the meta-gradient through {self.steps} unrolled steps of {type(self.model).__name__} is not finite "
                f"({int((~torch.isfinite(grad)).sum())} entries); unroll fewer steps or without the regulariser")
        return grad

    def _loss(self, params, x, edge_index, edge_weight):
        out = functional_call(self.model, params, (x, edge_index, edge_weight))
        loss = F.cross_entropy(out[self.train_idx], self.y[self.train_idx])
        reg = getattr(self.model, "regularization", None) if self.regularize else None
        return loss + reg() if callable(reg) else loss

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None):
        meta = edge_weight is not None and edge_weight.requires_grad
        if meta:
            edge_weight.register_hook(self._check_finite)
        b1, b2, eps = 0.9, 0.999, 1e-8
        with torch.enable_grad():
            params = {n: t.clone().requires_grad_(True) for n, t in self.theta0.items()}
            m = {n: torch.zeros_like(t) for n, t in params.items()}
            v = {n: torch.zeros_like(t) for n, t in params.items()}
            for t in range(1, self.steps + 1):
                loss = self._loss(params, x, edge_index, edge_weight)
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=meta)
                new = {}
                for (n, p), g in zip(params.items(), grads):
                    g = g + self.weight_decay * p
                    m[n] = b1 * m[n] + (1 - b1) * g
                    v[n] = b2 * v[n] + (1 - b2) * g * g
                    # torch.optim.Adam's step; the 1e-30 keeps sqrt's derivative finite where v = 0
                    step = (m[n] / (1 - b1**t)) / (torch.sqrt(v[n] / (1 - b2**t) + 1e-30) + eps)
                    new[n] = p - self.lr * step
                    if not meta:
                        new[n] = new[n].detach().requires_grad_(True)
                        m[n], v[n] = m[n].detach(), v[n].detach()
                params = new
            out = functional_call(self.model, params, (x, edge_index, edge_weight))
        return out if meta else out.detach()


def meta_pgd(name: str, data: Data, split: Split, budget: float, clean: nn.Module, *, seed: int = 0,
             steps: int = 100, epochs: int = 50, resample: int = 40, block_size: int = 20_000,
             final_samples: int = 5, lr: float = 1_000.0, loss: str = "tanh_margin", show_progress: bool = False,
             **params) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Meta-PGD poisoning of defence ``name`` within ``budget`` (a fraction of the edges).

    ``clean``: the defence trained on the clean graph; its predictions are the attacker's
    labels of the unlabelled nodes (:func:`.evaluate.attacker_labels`). The unrolled
    surrogate (:class:`UnrolledTraining`, ``steps`` Adam steps) starts from a fresh model
    drawn with ``seed``; ``params`` override the defence's parameters. The surrogate trains
    without the model's regulariser: RGCN's KL term has a second derivative of order 10¹⁶
    where a variance nears 0 (its ``log(1e-8 + σ)``), and through it the meta-gradient
    reached 10¹¹ after 20 unrolled steps and NaN after 60 on Cora-ML (without it: 10⁻³).
    PR-BCD settings as :func:`.evaluate.prbcd`, except a smaller default block (every step
    trains the defence on the graph plus the block) and ``final_samples`` discrete samples
    (PR-BCD's default: 20), each of which trains the surrogate once more. Returns
    ``(poisoned edge_index, flips: (2, k), seconds)``; the defender then trains on the
    poisoned graph.
    """
    d = defence(name)
    if d.not_unrolled or d.adaptive is None:
        raise ValueError(f"defence {name!r} cannot be unrolled for a meta-gradient: "
                         f"{d.not_unrolled or 'it has no differentiable form'}")
    labels = attacker_labels(clean, data, split, data.edge_index)
    config.seed_everything(seed)  # θ₀ of the surrogate, then PR-BCD's blocks from the same stream
    model = build(name, data, **params).to(data.x.device)
    surrogate = UnrolledTraining(model, data.y, split.train.to(data.x.device), steps=steps, regularize=False)
    return run_prbcd(surrogate, data.x, data.edge_index, labels, budget_flips(budget, data), split.unlabelled,
                     seed=None, epochs=epochs, resample=resample, block_size=block_size, lr=lr, loss=loss,
                     show_progress=show_progress, max_final_samples=final_samples)
