"""Meta-gradients of Metattack's attack loss with respect to every node pair.

Three estimators of ``∂L_atk/∂a_uv`` (for an undirected flip of ``(u, v)``), all
returning a dense symmetric ``(N, N)`` matrix:

* :func:`exact_meta_gradient` — differentiates through ``T`` unrolled steps of training
  the linear surrogate with SGD + momentum (the paper's Meta-Self / Meta-Train).
* :func:`approx_meta_gradient` — trains with Adam and sums the plain gradients of the
  attack loss at every step (A-Meta-*).
* first order: ``exact_meta_gradient(..., unroll=False)``, the gradient at the trained
  weights only.

:func:`reference_meta_gradient` is the textbook implementation (dense autograd through
the unrolled training); the tests check the fast estimator against it.

**Why the exact one is fast.** With logits ``Z = Q W1 W2`` and ``Q = Â²X``, every
gradient of the training loss with respect to ``W1`` is ``Q_Lᵀ(G W2ᵀ)``: it lies in the
row space of ``Q_L`` (the rows of the labelled nodes). Momentum only adds gradients up,
so ``W1_t = W1_0 + Q_Lᵀ B_t`` exactly, and the training trajectory depends on the graph
only through ``H0 = Q_L W1_0`` (``n_L × h``) and the Gram matrix ``K = Q_L Q_Lᵀ``
(``n_L × n_L``). The unrolled loop then runs on matrices of a few hundred rows, and
autograd through it is cheap. Chaining back to the adjacency, ``∂L/∂Q`` is a sum of
rank-``h`` terms plus a block on the labelled rows, so ``∂L/∂Â = MÂ + ÂM`` with
``M = (∂L/∂Q) Xᵀ`` is assembled from one ``N × 4h × N`` product and sparse products.
No ``N × N`` matrix is formed before that final assembly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..graph import normalize_dense
from .surrogate import Propagation, glorot

__all__ = [
    "MetaProblem",
    "attack_loss",
    "exact_meta_gradient",
    "approx_meta_gradient",
    "reference_meta_gradient",
]


@dataclass
class MetaProblem:
    """Everything the meta-gradient needs besides the adjacency.

    ``x: (N, D)`` features (dense or CSR), ``targets: (N,)`` labels the attack loss uses
    (true labels on the labelled nodes, self-training labels elsewhere), ``idx_train``
    the labelled nodes, ``idx_unlabeled`` the rest. ``lam`` mixes the attack loss:
    ``lam * CE(labelled) + (1 - lam) * CE(unlabelled)`` (0: Meta-Self, 1: Meta-Train).
    """

    x: torch.Tensor
    targets: torch.Tensor
    idx_train: torch.Tensor
    idx_unlabeled: torch.Tensor
    num_classes: int
    hidden: int = 16
    steps: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    lam: float = 0.0
    approx_lr: float = 0.01
    w1: torch.Tensor | None = None  # (D, h) initial weights (Glorot), fixed across flips
    w2: torch.Tensor | None = None  # (h, C)

    def __post_init__(self) -> None:
        dev = self.targets.device
        n, d = self.x.shape
        self.xt = self.x.t().to_sparse_csr() if self.x.layout == torch.sparse_csr else self.x.t()
        self.y_train = self.targets[self.idx_train]
        self.onehot_train = F.one_hot(self.y_train, self.num_classes).to(self.dtype)
        e = torch.zeros(n, self.idx_train.numel(), dtype=self.dtype, device=dev)
        e[self.idx_train, torch.arange(self.idx_train.numel(), device=dev)] = 1
        self.e_train = e
        if self.w1 is None or self.w2 is None:
            self.reinitialize(torch.Generator().manual_seed(0))
        else:
            self.xw0 = self.x @ self.w1

    def reinitialize(self, generator: torch.Generator) -> None:
        """Draw new initial weights ``w1, w2`` (Glorot) from ``generator``."""
        d, dev = self.x.size(1), self.targets.device
        self.w1 = glorot(d, self.hidden, generator, self.dtype).to(dev)
        self.w2 = glorot(self.hidden, self.num_classes, generator, self.dtype).to(dev)
        self.xw0 = self.x @ self.w1

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype


def attack_loss(logits: torch.Tensor, p: MetaProblem) -> torch.Tensor:
    """``lam · CE(labelled, true labels) + (1 − lam) · CE(unlabelled, self-training labels)``."""
    loss = logits.new_zeros(())
    if p.lam > 0:
        loss = loss + p.lam * F.cross_entropy(logits[p.idx_train], p.targets[p.idx_train])
    if p.lam < 1:
        loss = loss + (1 - p.lam) * F.cross_entropy(
            logits[p.idx_unlabeled], p.targets[p.idx_unlabeled]
        )
    return loss


def _unrolled_training(h0, k, p: MetaProblem):
    """``T`` steps of SGD with momentum in the row-space coordinates ``B`` (see module doc)."""
    n_l = h0.size(0)
    b = h0.new_zeros(n_l, p.hidden)
    vb = torch.zeros_like(b)
    w2 = p.w2
    vw = torch.zeros_like(w2)
    for _ in range(p.steps):
        h = h0 + k @ b
        g = (torch.softmax(h @ w2, dim=1) - p.onehot_train) / n_l  # dCE/dZ on labelled nodes
        db, dw = g @ w2.t(), h.t() @ g
        vb = p.momentum * vb + db
        vw = p.momentum * vw + dw
        b = b - p.lr * vb
        w2 = w2 - p.lr * vw
    return b, w2


def exact_meta_gradient(adj: torch.Tensor, p: MetaProblem, unroll: bool = True) -> torch.Tensor:
    """Meta-gradient through ``p.steps`` unrolled SGD-momentum steps; ``adj: (N, N)``.

    With ``unroll=False`` the dependence of the trained weights on the graph is ignored
    (the first-order approximation). Returns ``(N, N)``, symmetric.
    """
    prop = Propagation.from_dense(adj)
    idx_l = p.idx_train
    x, xt = p.x, p.xt
    with torch.no_grad():
        z2 = prop(p.e_train, 2)  # Â² E_L, (N, n_L)
        q_l = (xt @ z2).t().contiguous()  # Q_L = (Â² X)[L], (n_L, D)
        gram = q_l @ q_l.t()  # K, (n_L, n_L)
        h0 = prop(p.xw0, 2)[idx_l]  # Q_L W1_0, (n_L, h)
    with torch.enable_grad():
        h0 = h0.requires_grad_(unroll)
        gram = gram.requires_grad_(unroll)
        b_t, w2_t = _unrolled_training(h0, gram, p)
        with torch.no_grad():
            w1_t = p.w1 + q_l.t() @ b_t  # (D, h)
            xw1 = x @ w1_t  # (N, h)
            s = prop(xw1, 2)
        s = s.requires_grad_(True)
        w2_leaf = w2_t.detach().requires_grad_(True)
        f, dw2 = torch.autograd.grad(attack_loss(s @ w2_leaf, p), [s, w2_leaf])
        if unroll:
            dw1 = xt @ prop(f, 2)  # Q_Lᵀ-free form of Qᵀ F, (D, h)
            db = q_l @ dw1  # (n_L, h)
            dh0, dgram = torch.autograd.grad([b_t, w2_t], [h0, gram], grad_outputs=[db, dw2])
    with torch.no_grad():
        # M = (∂L/∂Q) Xᵀ = F (X W1_T)ᵀ + E_L W_L   (W_L only when unrolling)
        u, v = f, xw1
        au, av = prop(u), prop(v)
        g_sym = torch.cat([u, av, au, v], 1) @ torch.cat([av, u, v, au], 1).t()
        if unroll:
            w_l = b_t.detach() @ (x @ dw1).t()
            w_l += dh0 @ p.xw0.t()
            w_l += (dgram + dgram.t()) @ (x @ q_l.t()).t()  # (n_L, N)
            w_l_a = prop(w_l.t()).t()  # W_L Â
            g_sym[idx_l] += w_l_a
            g_sym[:, idx_l] += w_l_a.t()
            a_cols = prop(p.e_train).to_sparse_csr()  # Â E_L, sparse (N, n_L)
            aw = a_cols @ w_l
            g_sym += aw
            g_sym += aw.t()
        return prop.pair_gradient(g_sym)


def approx_meta_gradient(
    adj: torch.Tensor, p: MetaProblem, generator: torch.Generator
) -> torch.Tensor:
    """Sum over ``p.steps`` Adam steps of the attack-loss gradient at the current weights.

    Weights are drawn afresh from ``generator`` (as in the authors' code). The training
    gradients are written out by hand (``∂/∂W1 = Xᵀ Â² E_L (G W2ᵀ)``), which keeps
    autograd away from the sparse products. Returns ``(N, N)``, symmetric.
    """
    prop = Propagation.from_dense(adj)
    d = p.x.size(1)
    w1 = glorot(d, p.hidden, generator, p.dtype).to(adj.device)
    w2 = glorot(p.hidden, p.num_classes, generator, p.dtype).to(adj.device)
    w1.grad, w2.grad = torch.zeros_like(w1), torch.zeros_like(w2)
    opt = torch.optim.Adam([w1, w2], lr=p.approx_lr)
    z2 = prop(p.e_train, 2)  # Â² E_L, (N, n_L)
    n_l = p.idx_train.numel()
    fs, vs = [], []
    for _ in range(p.steps):
        xw1 = p.x @ w1
        s = prop(xw1, 2)
        with torch.enable_grad():
            s_leaf = s.requires_grad_(True)
            (f,) = torch.autograd.grad(attack_loss(s_leaf @ w2, p), [s_leaf])
        fs.append(f)
        vs.append(xw1)
        s_l = s[p.idx_train].detach()
        g = (torch.softmax(s_l @ w2, dim=1) - p.onehot_train) / n_l
        w2.grad.copy_(s_l.t() @ g)
        w1.grad.copy_(p.xt @ (z2 @ (g @ w2.t())))
        opt.step()
    m = torch.cat(fs, 1) @ torch.cat(vs, 1).t()  # Σ_t F_t (X W1_t)ᵀ, (N, N)
    am = prop(m)  # Â M
    g_sym = am + am.t()
    mt_a = prop(m.t())  # Â Mᵀ
    g_sym += mt_a
    g_sym += mt_a.t()
    return prop.pair_gradient(g_sym)


def reference_meta_gradient(adj: torch.Tensor, p: MetaProblem, unroll: bool = True) -> torch.Tensor:
    """Textbook meta-gradient: dense autograd through the unrolled training (slow; tests).

    Trains ``W1, W2`` directly with ``create_graph=True`` and differentiates the attack
    loss with respect to the dense adjacency; symmetrised for undirected flips.
    """
    x = p.x.to_dense() if p.x.layout != torch.strided else p.x
    with torch.enable_grad():
        a = adj.clone().requires_grad_(True)
        a_hat = normalize_dense(a)
        q = a_hat @ (a_hat @ x)
        w1, w2 = p.w1.clone().requires_grad_(True), p.w2.clone().requires_grad_(True)
        v1, v2 = torch.zeros_like(w1), torch.zeros_like(w2)
        for _ in range(p.steps):
            loss = F.cross_entropy((q[p.idx_train] @ w1) @ w2, p.y_train)
            g1, g2 = torch.autograd.grad(loss, [w1, w2], create_graph=unroll)
            v1, v2 = p.momentum * v1 + g1, p.momentum * v2 + g2
            w1, w2 = w1 - p.lr * v1, w2 - p.lr * v2
        if not unroll:
            w1, w2 = w1.detach(), w2.detach()
        (g,) = torch.autograd.grad(attack_loss(q @ w1 @ w2, p), [a])
    return g + g.t()
