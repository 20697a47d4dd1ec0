"""The meta attack on labels (Lingam et al., ICLR 2024, Section 3): gradients through training.

The attacker's variables are logits ``θ`` over candidate flips: one per (pool node, wrong
class) pair, or one per eligible node in the BIN setting (swap of the two largest
classes). Each outer step

1. selects ``B`` candidates with a **soft top-k**: the exact marginals of the distribution
   over ``B``-subsets with ``P(S) ∝ exp(Σ_{i∈S} θ_i)`` (a log-space dynamic program,
   :func:`ksubset_marginals`), used straight-through behind the hard top-``B``. The hard
   selection takes at most one wrong class per node, so exactly ``B`` labels change (the
   authors' code can select two classes of one node and then flips fewer);
2. builds the poisoned one-hot labels ``Ŷ_L = (1 − s) ⊙ Y_L + H`` from the selection;
3. trains a surrogate GCN for ``steps`` unrolled Adam steps on ``Ŷ_L`` (differentiable);
4. scores the surrogate's test predictions with a hard **Gumbel-softmax** (τ = 100),
   a differentiable stand-in for test accuracy, and descends on ``θ`` with Adam.

The labels with the lowest surrogate test accuracy seen are returned.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ..graph import as_operator, normalized_sparse
from ..threads import adapt
from .attacks import LabelAttack, bin_pair, check_pool, eligible

__all__ = ["ksubset_marginals", "meta_attack"]


def _logaddexp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(eᵃ + eᵇ)`` written so that its second derivative stays finite (torch's
    ``logaddexp`` double-backward gives NaN when both arguments underflow)."""
    m = torch.maximum(a, b).detach()
    return m + torch.log(torch.exp(a - m) + torch.exp(b - m))


def ksubset_marginals(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Marginals ``P(i ∈ S)`` of ``P(S) ∝ exp(Σ_{i∈S} logits_i)`` over subsets of size ``k``.

    ``log Z = log e_k(exp(logits))`` (elementary symmetric polynomial) is computed by a
    log-space recursion over the items; the marginals are its gradient, returned with a
    graph (when ``logits`` requires grad) so that they can be differentiated again.
    ``(n,) → (n,)``, summing to ``k``.
    """
    n = logits.numel()
    if not 0 < k <= n:
        raise ValueError(f"k must lie in 1..{n}, got {k}")
    with torch.enable_grad():
        theta = logits if logits.requires_grad else logits.detach().requires_grad_(True)
        # e[j] = log e_j of the items seen so far; a finite "log 0" keeps gradients finite
        low = -1e4 if theta.dtype == torch.float32 else -1e8
        e = torch.cat([theta.new_zeros(1), theta.new_full((k,), low)])
        for i in range(n):
            e = _logaddexp(e, torch.cat([e.new_full((1,), low), e[:-1] + theta[i]]))
        (marg,) = torch.autograd.grad(e[k], theta, create_graph=logits.requires_grad)
    return marg if logits.requires_grad else marg.detach()


class _SparseMM(torch.autograd.Function):
    """``a @ x`` for a constant sparse ``a`` with a differentiable, re-differentiable backward."""

    @staticmethod
    def forward(ctx, a, at, x):
        ctx.a, ctx.at = a, at
        return a @ x

    @staticmethod
    def backward(ctx, grad):
        return None, None, _SparseMM.apply(ctx.at, ctx.a, grad)


def _gcn_logits(x_op, xt_op, a_op, w1, w2):
    h = torch.relu(_SparseMM.apply(a_op, a_op, _SparseMM.apply(x_op, xt_op, w1)))
    return _SparseMM.apply(a_op, a_op, h @ w2)


def _hard_selection(logits, cand_node, num_nodes, budget):
    """Top-``budget`` candidates with at most one per node (each node's best candidate)."""
    best = torch.full((num_nodes,), -math.inf).scatter_reduce(0, cand_node, logits, "amax")
    is_best = logits == best[cand_node]
    first = torch.zeros(num_nodes, dtype=torch.bool)
    keep = torch.zeros_like(is_best)
    for i in is_best.nonzero().view(-1).tolist():  # one candidate per node on ties
        if not first[cand_node[i]]:
            first[cand_node[i]] = True
            keep[i] = True
    score = torch.where(keep, logits, torch.full_like(logits, -math.inf))
    hard = torch.zeros_like(logits)
    hard[torch.topk(score, budget).indices] = 1.0
    return hard


def meta_attack(
    x: torch.Tensor,
    edge_index: torch.Tensor,
    y: torch.Tensor,
    pool: torch.Tensor,
    targets: torch.Tensor,
    target_labels: torch.Tensor,
    budget: int,
    *,
    binary: bool = False,
    pair: tuple[int, int] | None = None,
    hidden: int = 16,
    steps: int = 15,
    inner_lr: float = 0.01,
    weight_decay: float = 5e-4,
    outer_steps: int = 100,
    outer_lr: float = 0.1,
    patience: int = 20,
    tau: float = 100.0,
    seed: int = 0,
) -> LabelAttack:
    """Meta-gradient label attack with a GCN surrogate (see the module docstring)."""
    start = time.perf_counter()
    c = check_pool(y, pool)
    pair = (pair or bin_pair(y, y[pool])) if binary else None
    eligible(y, pool, budget, binary, pair)
    gen = torch.Generator().manual_seed(seed)
    n = y.numel()
    xs = x.float()
    x_op = as_operator(xs)
    xt_op = x_op.t().to_sparse_csr() if x_op.layout == torch.sparse_csr else xs.t()
    a_op = normalized_sparse(edge_index, n).float().to_sparse_csr()
    yl = y[pool]
    onehot_l = F.one_hot(yl, c).float()
    if pair is not None:
        a, b = pair
        cand_node = ((yl == a) | (yl == b)).nonzero().view(-1)
        cand_class = torch.where(yl[cand_node] == a, b, a)
    else:
        cand_node = torch.arange(pool.numel()).repeat_interleave(c - 1)
        wrong = torch.stack([torch.tensor([k for k in range(c) if k != int(v)]) for v in yl])
        cand_class = wrong.view(-1)
    bound1 = (6.0 / (x.size(1) + hidden)) ** 0.5
    bound2 = (6.0 / (hidden + c)) ** 0.5
    w1_0 = (torch.rand(x.size(1), hidden, generator=gen) * 2 - 1) * bound1
    w2_0 = (torch.rand(hidden, c, generator=gen) * 2 - 1) * bound2
    y_t = F.one_hot(target_labels, c).float()
    logits = (0.01 * torch.randn(cand_node.numel(), generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=outer_lr, weight_decay=1e-5)

    def labels_from(select: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(pool.numel(), c).index_put((cand_node, cand_class), select, accumulate=True)
        s = torch.zeros(pool.numel()).index_add(0, cand_node, select)
        return (1 - s)[:, None] * onehot_l + h

    def train(y_soft: torch.Tensor, create_graph: bool):
        w1, w2 = w1_0.clone().requires_grad_(True), w2_0.clone().requires_grad_(True)
        m = [torch.zeros_like(w1), torch.zeros_like(w2)]
        v = [torch.zeros_like(w1), torch.zeros_like(w2)]
        for t in range(1, steps + 1):
            out = _gcn_logits(x_op, xt_op, a_op, w1, w2)[pool]
            loss = -(y_soft * F.log_softmax(out, 1)).sum(1).mean()
            g1, g2 = torch.autograd.grad(loss, [w1, w2], create_graph=create_graph)
            new = []
            for i, (w, g) in enumerate(((w1, g1), (w2, g2))):
                g = g + weight_decay * w
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                mh, vh = m[i] / (1 - 0.9**t), v[i] / (1 - 0.999**t)
                new.append(w - inner_lr * mh / (vh.sqrt() + 1e-8))
            w1, w2 = new
        return _gcn_logits(x_op, xt_op, a_op, w1, w2)[targets]

    best = (math.inf, None)
    waited = 0
    with torch.enable_grad():
        for _ in range(outer_steps):
            adapt()  # thread count follows the machine's load (graphtrust.threads)
            soft = ksubset_marginals(logits, budget)
            hard = _hard_selection(logits.detach(), cand_node, pool.numel(), budget)
            select = hard + soft - soft.detach()
            pred = train(labels_from(select), create_graph=True)
            onehot_pred = F.gumbel_softmax(pred, tau=tau, hard=True)
            loss = (onehot_pred * y_t).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                acc = float((pred.argmax(1) == target_labels).float().mean())
            if acc < best[0]:
                best, waited = (acc, hard.detach().clone()), 0
            else:
                waited += 1
                if waited >= patience:
                    break
    chosen = best[1].nonzero().view(-1)
    labels = y.clone()
    labels[pool[cand_node[chosen]]] = cand_class[chosen]
    flipped = torch.unique(pool[cand_node[chosen]])
    name = "meta" + ("-bin" if binary else "")
    return LabelAttack(name, labels, flipped, budget, time.perf_counter() - start)
