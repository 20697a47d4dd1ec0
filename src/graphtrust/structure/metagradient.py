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

**Memory at scale.** Two parts grow with the labelled nodes: the Gram matrix (``n_L²``)
and the labelled rows ``W_L = (∂L/∂Q_L) Xᵀ`` of ``M`` (``n_L × N``, kept with ``W_L Â``).
At ogbn-arxiv's size (169,343 nodes, 16,934 labelled) each ``n_L × N`` matrix is 11.5 GB
in float32, which is why the first version ran out of memory there. With fewer features
than labelled nodes (``D < n_L``: 128 against 16,934 on arxiv) neither is needed: the
training unrolls in ``W1``'s own coordinates (``O(n_L·D·h)`` a step, no Gram matrix) and
``W_L`` is kept as rank-``D`` factors, its ``(Â E_L)`` half folded into the dense factors.
Memory is then ``O(N·(h + D))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..graph import dense, normalize_dense
from .surrogate import Propagation, glorot

__all__ = [
    "MetaProblem",
    "PairScores",
    "exact_meta_scores",
    "approx_meta_scores",
    "WHOLE_ENTRIES",
    "training_curve",
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
        self.xt = self.x.t().to_sparse_csr() if self.x.layout == torch.sparse_csr else self.x.t()
        self.y_train = self.targets[self.idx_train]
        self.onehot_train = F.one_hot(self.y_train, self.num_classes).to(self.dtype)
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


def _unrolled_training(h0, k, p: MetaProblem, record: list | None = None, curve: list | None = None,
                       steps: int | None = None):
    """``T`` steps of SGD with momentum in the row-space coordinates ``B`` (see module doc).

    ``k`` enters as a constant; with ``record`` (a list), each step's ``(∂/∂H_t, B_t)`` is
    appended during the backward pass, so that ``∂L/∂K = Σ_t (∂/∂H_t) B_tᵀ`` is one
    ``n_L × Th × n_L`` product (:func:`_gram_gradient`) instead of ``T`` outer products.
    With ``curve`` (a list), the training loss and accuracy before each step are appended.
    ``steps`` overrides ``p.steps``.
    """
    n_l = h0.size(0)
    b = h0.new_zeros(n_l, p.hidden)
    vb = torch.zeros_like(b)
    w2 = p.w2
    vw = torch.zeros_like(w2)
    for _ in range(p.steps if steps is None else steps):
        h = h0 + k @ b
        if record is not None and h.requires_grad:
            h.register_hook(lambda grad, b=b: record.append((grad, b.detach())))
        prob = torch.softmax(h @ w2, dim=1)
        _note(prob, p, curve)
        g = (prob - p.onehot_train) / n_l  # dCE/dZ on labelled nodes
        db, dw = g @ w2.t(), h.t() @ g
        vb = p.momentum * vb + db
        vw = p.momentum * vw + dw
        b = b - p.lr * vb
        w2 = w2 - p.lr * vw
    return b, w2


def _unrolled_weights(q_l, p: MetaProblem, curve: list | None = None, steps: int | None = None):
    """The steps of :func:`_unrolled_training` in the weights' own coordinates, ``H_t = Q_L W1_t``.

    ``q_l: (n_L, D)``. Each step costs ``O(n_L·D·h)`` instead of ``O(n_L²·h)``, and no
    ``n_L × n_L`` Gram matrix exists: the cheaper form when ``D < n_L`` (graphs with few
    features and many labelled nodes, e.g. ogbn-arxiv: 128 features, 16,934 labelled).
    Returns ``(W1_T, W2_T)``; autograd reaches ``q_l`` when it requires a gradient.
    """
    n_l = q_l.size(0)
    w1, w2 = p.w1, p.w2
    v1, v2 = torch.zeros_like(w1), torch.zeros_like(w2)
    for _ in range(p.steps if steps is None else steps):
        h = q_l @ w1
        prob = torch.softmax(h @ w2, dim=1)
        _note(prob, p, curve)
        g = (prob - p.onehot_train) / n_l
        v1 = p.momentum * v1 + q_l.t() @ (g @ w2.t())
        v2 = p.momentum * v2 + h.t() @ g
        w1 = w1 - p.lr * v1
        w2 = w2 - p.lr * v2
    return w1, w2


def _note(prob: torch.Tensor, p: MetaProblem, curve: list | None) -> None:
    """Append the training loss and accuracy of ``prob: (n_L, C)`` to ``curve`` (if a list)."""
    if curve is not None:
        prob = prob.detach()
        picked = prob[torch.arange(prob.size(0), device=prob.device), p.y_train]
        curve.append((float(-picked.log().mean()), float((prob.argmax(1) == p.y_train).double().mean())))


def _fit(h: torch.Tensor, w2: torch.Tensor, p: MetaProblem) -> tuple[float, float]:
    """Training cross-entropy and accuracy of the surrogate with hidden ``h: (n_L, h)``."""
    logits = h @ w2
    loss = F.cross_entropy(logits, p.y_train)
    acc = (logits.argmax(1) == p.y_train).to(logits.dtype).mean()
    return float(loss), float(acc)


def training_curve(prop: Propagation, p: MetaProblem, steps: int) -> list[tuple[float, float]]:
    """The surrogate's training loss and accuracy after ``0 … steps`` steps on the graph of ``prop``.

    The same SGD-with-momentum steps (``p.lr``, ``p.momentum``, initial weights ``p.w1, p.w2``)
    as the meta-gradient, without the graph's gradient. Returns ``steps + 1`` pairs.
    """
    curve: list[tuple[float, float]] = []
    with torch.no_grad():
        q_l = _labelled_features(prop, p, *_columns(prop, p.idx_train))
        if _row_space(p):
            h0 = prop(p.xw0, 2)[p.idx_train]
            gram = q_l @ q_l.t()
            b, w2 = _unrolled_training(h0, gram, p, curve=curve, steps=steps)
            curve.append(_fit(h0 + gram @ b, w2, p))
        else:
            w1, w2 = _unrolled_weights(q_l, p, curve=curve, steps=steps)
            curve.append(_fit(q_l @ w1, w2, p))
    return curve


def _row_space(p: MetaProblem) -> bool:
    """Unroll in the row-space coordinates (:func:`_unrolled_training`) unless there are
    fewer features than labelled nodes (:func:`_unrolled_weights` is then cheaper)."""
    return p.x.size(1) >= p.idx_train.numel()


def _gram_gradient(record: list) -> torch.Tensor:
    """``Σ_t (∂/∂H_t) B_tᵀ`` from the pairs :func:`_unrolled_training` recorded."""
    grads = torch.cat([g for g, _ in record], 1)
    bs = torch.cat([b for _, b in record], 1)
    return grads @ bs.t()


@dataclass
class PairScores:
    """``∂L/∂a_uv`` (an undirected flip of ``(u, v)``) for every pair, kept as factors.

    With ``M = U Vᵀ + E_L W_L`` (``∂L/∂Q · Xᵀ``; ``E_L`` the one-hot columns of the
    labelled nodes) the symmetrised gradient with respect to ``Â`` is
    ``g_sym = MÂ + ÂM + (MÂ + ÂM)ᵀ``, i.e.

    * a dense rank-``4k`` part ``left @ rightᵀ`` (``left = [U, ÂV, ÂU, V]``,
      ``right = [ÂV, U, V, ÂU]``, both ``(N, 4k)``);
    * the labelled rows ``W_L Â`` (``lab_rows: (n_L, N)``), added to the rows *and* the
      columns of the labelled nodes;
    * ``Â E_L W_L`` and its transpose, from the sparse ``Â E_L`` (its non-zeros
      ``a_rows, a_pos, a_vals``, sorted by row) and ``w_l: (n_L, N)``.

    :meth:`pair_gradient` chains through the degree normalisation
    (``g_sym_uv s_u s_v + c_u + c_v``; the scaling and ``c`` are folded into the parts once,
    by :meth:`_fold`), block by block: no ``(N, N)`` matrix is formed unless a block asks
    for every row. ``lab_rows``/``w_l`` are ``None`` for the first-order
    and approximate estimators. Memory: ``O(N·(k + n_L))``. In the factored form
    (:func:`exact_meta_scores` with ``factored``) ``W_L Â = p_l r_aᵀ`` is formed per block,
    ``Â E_L W_L`` and its transpose are columns of ``left``/``right``, and memory is
    ``O(N·(k + D))``.
    """

    left: torch.Tensor
    right: torch.Tensor
    s: torch.Tensor
    lab_nodes: torch.Tensor | None = None  # (n_L,) labelled nodes, sorted
    lab_rows: torch.Tensor | None = None  # (n_L, N) W_L Â, rows in lab_nodes' order
    a_rows: torch.Tensor | None = None  # non-zeros of Â E_L: row i, labelled position, value
    a_pos: torch.Tensor | None = None
    a_vals: torch.Tensor | None = None
    w_l: torch.Tensor | None = None  # (n_L, N)
    p_l: torch.Tensor | None = None  # (n_L, D) factored form: W_L Â = p_l r_aᵀ (w_l, lab_rows None)
    r_a: torch.Tensor | None = None  # (N, D) Â X
    c: torch.Tensor | None = None  # (N,) degree-chain term, set by _finish
    whole: torch.Tensor | None = None  # (N, N) the pair gradient itself (A-Meta on small graphs)
    fit: tuple[float, float] | None = None  # the surrogate's training loss and accuracy at step T
    c_folded: bool = False  # c is the last two columns of the factors (set by _fold)

    @property
    def num_nodes(self) -> int:
        return self.left.size(0) if self.whole is None else self.whole.size(0)

    @classmethod
    def from_low_rank(cls, prop: Propagation, u: torch.Tensor, v: torch.Tensor) -> PairScores:
        """The whole pair gradient of ``M = u vᵀ`` (high rank: A-Meta's ``T·h``), as one matrix.

        ``g_sym = ÂM + MᵀÂ + ÂMᵀ + MÂ = ÂP + PÂ`` with ``P = M + Mᵀ``, and ``PÂ = (ÂP)ᵀ``
        because both are symmetric: one ``N × Th × N`` product, one sparse product and two
        transposed copies, instead of factors of rank ``4Th`` and their degree chain.
        """
        p = u @ v.t()
        p += p.t().contiguous()
        g = prop(p)
        g += g.t().contiguous()
        out = prop.pair_gradient(g)
        empty = u.new_empty(u.size(0), 0)
        return cls(empty, empty, prop.s, whole=out)

    def pair_gradient(self, r0: int, r1: int, c0: int = 0) -> torch.Tensor:
        """Rows ``r0:r1``, columns ``c0:N`` of ``∂L/∂a_uv + ∂L/∂a_vu``.

        ``s_u g_sym_uv s_v + c_u + c_v`` with the scaling and ``c`` folded into the parts by
        :meth:`_fold`: one product of the factors plus row additions for the sparse parts.
        """
        if self.whole is not None:  # the caller may modify the block: a copy unless it is all of it
            g = self.whole[r0:r1, c0:]
            return g if (r0, r1, c0) == (0, self.num_nodes, 0) else g.clone()
        g = self.left[r0:r1] @ self.right[c0:].t()
        if not self.c_folded:
            g += self.c[r0:r1, None]
            g += self.c[None, c0:]
        if self.lab_nodes is not None:
            dev = self.lab_nodes.device
            nodes = self.lab_nodes
            lo, hi = torch.searchsorted(nodes, torch.tensor([r0, r1], device=dev)).tolist()
            if hi > lo:  # labelled rows in the block
                g.index_add_(0, nodes[lo:hi] - r0, self._lab_rows(slice(lo, hi), slice(c0, None)))
            lo = int(torch.searchsorted(nodes, torch.tensor(c0, device=dev)))
            if nodes.numel() > lo:  # labelled columns in the block
                g.index_add_(1, nodes[lo:] - c0, self._lab_rows(slice(lo, None), slice(r0, r1)).t())
            if self.w_l is None:  # factored: Â E_L W_L is in the dense factors
                return g
            lo, hi = torch.searchsorted(self.a_rows, torch.tensor([r0, r1], device=dev)).tolist()
            if hi > lo:  # Â E_L W_L on the block's rows
                g.index_add_(0, self.a_rows[lo:hi] - r0, self.a_vals[lo:hi, None] * self.w_l[self.a_pos[lo:hi], c0:])
            lo = int(torch.searchsorted(self.a_rows, torch.tensor(c0, device=dev)))
            if self.a_rows.numel() > lo:  # and its transpose on the block's columns (rows sorted)
                cols, pos, vals = self.a_rows[lo:], self.a_pos[lo:], self.a_vals[lo:]
                g.index_add_(1, cols - c0, (vals[:, None] * self.w_l[pos, r0:r1]).t())
        return g

    def _lab_rows(self, rows: slice, cols: slice) -> torch.Tensor:
        """``(W_L Â)[rows, cols]``, stored or from the factors."""
        if self.lab_rows is not None:
            return self.lab_rows[rows, cols]
        return self.p_l[rows] @ self.r_a[cols].t()

    def dense(self) -> torch.Tensor:
        """The whole ``(N, N)`` pair gradient (small graphs and tests)."""
        return self.pair_gradient(0, self.num_nodes)

    def _finish(self, prop: Propagation) -> PairScores:
        """Compute ``c_i = −½ d̃_i^{-3/2} Σ_j g_sym_ij Ã_ij s_j`` from the factors.

        Uses ``Ã S Y = S⁻¹ Â Y`` (``Â = S Ã S``): for the dense part
        ``Σ_j Ã_ij s_j left_i·right_j = left_i · (ÃS right)_i``; the sparse parts likewise.
        """
        s = self.s
        acc = (self.left * prop(self.right)).sum(1)
        if self.lab_nodes is not None:
            # every sparse term pairs a non-zero (i, p, Â_il) of Â E_L with a neighbour of i
            rows, pos, vals = self.a_rows, self.a_pos, self.a_vals
            if self.lab_rows is not None:
                lab = vals * self.lab_rows[pos, rows]
            else:
                lab = vals * (self.p_l[pos] * self.r_a[rows]).sum(1)
            acc.index_add_(0, self.lab_nodes[pos], lab)  # labelled rows: Σ_j Â_lj (W_L Â)_pj
            acc.index_add_(0, rows, lab)  # their columns
        if self.w_l is not None:
            entry, flat = _row_entries(prop, rows)
            j = prop.a_hat.col_indices()[flat]  # neighbour j of row i = rows[entry]
            prod = prop.a_hat.values()[flat] * vals[entry] * self.w_l[pos[entry], j]
            acc.index_add_(0, rows[entry], prod)  # Â E_L W_L at the pair (i, j) of Ã
            acc.index_add_(0, j, prod)  # its transpose
        self.c = -0.5 * prop.deg.pow(-1.5) * acc / s
        self._fold()
        return self

    def _fold(self) -> None:
        """Scale every part by ``s`` on both sides, and append ``c`` to small factors.

        Afterwards ``left @ rightᵀ`` plus the sparse parts is ``s_u g_sym_uv s_v`` (plus
        ``c_u + c_v`` when :attr:`c_folded`: ``left = [s·left, c, 1]``,
        ``right = [s·right, 1, c]``), so a block needs no elementwise pass over ``N²``.
        High-rank factors (A-Meta) are scaled in place and ``c`` is added per block.
        """
        s, c = self.s, self.c
        if self.left.size(1) <= FOLD_RANK:
            one = torch.ones_like(c)[:, None]
            self.left = torch.cat([self.left * s[:, None], c[:, None], one], 1)
            self.right = torch.cat([self.right * s[:, None], one, c[:, None]], 1)
            self.c_folded = True
        else:
            self.left.mul_(s[:, None])
            self.right.mul_(s[:, None])
        if self.lab_rows is not None:
            self.lab_rows.mul_(s[None, :]).mul_(s[self.lab_nodes, None])
            self.w_l.mul_(s[None, :])
            self.a_vals = self.a_vals * s[self.a_rows]
        elif self.p_l is not None:
            self.r_a.mul_(s[:, None])
            self.p_l.mul_(s[self.lab_nodes, None])


#: factors of at most this rank get ``c`` appended as two more columns (:meth:`PairScores._fold`)
FOLD_RANK = 1024


def _symmetric(prop: Propagation, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of ``MÂ + ÂM + (MÂ + ÂM)ᵀ`` for ``M = u vᵀ``: ``([u, Âv, Âu, v], [Âv, u, v, Âu])``."""
    au, av = prop(u), prop(v)
    return torch.cat([u, av, au, v], 1), torch.cat([av, u, v, au], 1)


def exact_meta_scores(prop: Propagation, p: MetaProblem, unroll: bool = True,
                      factored: bool | None = None) -> PairScores:
    """Meta-gradient through ``p.steps`` unrolled SGD-momentum steps, as :class:`PairScores`.

    With ``unroll=False`` the dependence of the trained weights on the graph is ignored
    (the first-order approximation). The training is unrolled in the row-space
    coordinates, or in the weights' own when there are fewer features than labelled nodes
    (:func:`_row_space`). ``factored``: keep the labelled rows ``W_L = (∂L/∂Q_L) Xᵀ`` as
    rank-``D`` factors instead of ``n_L × N`` matrices (possible only with fewer features
    than labelled nodes; default: when the matrices would exceed :data:`LABELLED_ENTRIES`).
    """
    idx_l = p.idx_train
    x, xt = p.x, p.xt
    n, n_l = x.size(0), idx_l.numel()
    row_space = _row_space(p)
    if factored is None:
        factored = not row_space and n * n_l > LABELLED_ENTRIES
    factored = factored and unroll  # first order: no labelled rows to keep
    if factored and row_space:
        raise ValueError(f"factored labelled rows need fewer features than labelled nodes, got "
                         f"{x.size(1)} features and {n_l} labelled nodes")
    with torch.no_grad():
        order = torch.argsort(idx_l)
        nodes = idx_l[order]
        a_rows, a_pos, a_vals = _columns(prop, nodes)  # Â E_L (labelled nodes sorted), sparse
        q_l = _labelled_features(prop, p, a_rows, order[a_pos], a_vals)  # (n_L, D)
        if row_space:
            gram = q_l @ q_l.t()  # K, (n_L, n_L)
            h0 = prop(p.xw0, 2)[idx_l]  # Q_L W1_0, (n_L, h)
    record: list = []
    with torch.enable_grad():
        if row_space:
            h0 = h0.requires_grad_(unroll)
            b_t, w2_t = _unrolled_training(h0, gram, p, record if unroll else None)
            with torch.no_grad():
                w1_t = p.w1 + q_l.t() @ b_t  # (D, h)
                fit = _fit(h0 + gram @ b_t, w2_t, p)
        else:
            q_leaf = q_l.clone().requires_grad_(unroll)
            w1_t, w2_t = _unrolled_weights(q_leaf, p)
            fit = _fit(q_l @ w1_t.detach(), w2_t.detach(), p)
        with torch.no_grad():
            xw1 = x @ w1_t  # (N, h)
            s = prop(xw1, 2)
        s = s.requires_grad_(True)
        w2_leaf = w2_t.detach().requires_grad_(True)
        f, dw2 = torch.autograd.grad(attack_loss(s @ w2_leaf, p), [s, w2_leaf])
        if unroll:
            dw1 = xt @ prop(f, 2)  # Q_Lᵀ-free form of Qᵀ F, (D, h)
            if row_space:
                (dh0,) = torch.autograd.grad([b_t, w2_t], [h0], grad_outputs=[q_l @ dw1, dw2])
                dgram = _gram_gradient(record)
            else:
                (dq_l,) = torch.autograd.grad([w1_t, w2_t], [q_leaf], grad_outputs=[dw1, dw2])
    with torch.no_grad():
        # M = (∂L/∂Q) Xᵀ = F (X W1_T)ᵀ + E_L W_L   (W_L only when unrolling)
        left, right = _symmetric(prop, f, xw1)
        if factored:  # W_L = P Xᵀ, P = ∂L/∂Q_L: (Â E_L P) Xᵀ and its transpose join the dense factors
            p_l = dq_l[order].contiguous()
            xd = dense(x)
            ep = torch.zeros(n, p_l.size(1), dtype=p_l.dtype, device=p_l.device)
            ep[nodes] = p_l
            ep = prop(ep)
            left, right = torch.cat([left, ep, xd], 1), torch.cat([right, xd, ep], 1)
            del ep
        out = PairScores(left, right, prop.s, fit=fit)
        if unroll:
            out.lab_nodes = nodes
            out.a_rows, out.a_pos, out.a_vals = a_rows, a_pos, a_vals
            if factored:
                out.p_l, out.r_a = p_l, prop(xd)
            else:
                if row_space:
                    lw = torch.cat([b_t.detach(), dh0], 1)
                    rw = torch.cat([x @ dw1, p.xw0], 1)
                    w_l = lw @ rw.t()
                    w_l += (x @ ((dgram + dgram.t()) @ q_l).t()).t()  # (n_L, N): n_L²·D + nnz(X)·n_L work, not n_L²·N
                else:
                    w_l = (x @ dq_l.t()).t()
                out.w_l = w_l[order].contiguous()
                out.lab_rows = prop(out.w_l.t()).t().contiguous()  # W_L Â
        return out._finish(prop)


#: the labelled rows of the exact score are kept as factors beyond this many entries
#: (``n_L × N``; 2^26 floats are 256 MiB) when :func:`exact_meta_scores` can factor them
LABELLED_ENTRIES = 2**26


def _labelled_features(prop: Propagation, p: MetaProblem, a_rows, a_pos, a_vals) -> torch.Tensor:
    """``Q_L = (Â² X)[L]: (n_L, D)``, rows in ``p.idx_train``'s order.

    From ``N × D`` products when ``D <= n_L``, else from the ``N × n_L`` ones
    ``Q_Lᵀ = Xᵀ Â (Â E_L)`` (``a_*``: the non-zeros of ``Â E_L``, positions in ``idx_train``).
    """
    x, idx_l = p.x, p.idx_train
    if x.size(1) <= idx_l.numel():
        return prop(dense(x), 2)[idx_l].contiguous()
    a_dense = torch.zeros(x.size(0), idx_l.numel(), dtype=x.dtype, device=x.device)
    a_dense[a_rows, a_pos] = a_vals
    return (p.xt @ prop(a_dense)).t().contiguous()


def _row_entries(prop: Propagation, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``rows`` (repeats allowed), its stored entries of ``Â``: ``(which, flat)``,
    ``which`` the index into ``rows`` and ``flat`` the position in the CSR arrays."""
    crow = prop.a_hat.crow_indices()
    counts = crow[rows + 1] - crow[rows]
    which = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    start = torch.repeat_interleave(crow[rows] - torch.cumsum(counts, 0) + counts, counts)
    return which, start + torch.arange(start.numel(), device=rows.device)


def _columns(prop: Propagation, nodes: torch.Tensor):
    """Non-zeros ``(row, position in nodes, value)`` of ``Â E_L``, sorted by row.

    ``Â`` is symmetric, so column ``l`` is row ``l`` of the CSR operator.
    """
    pos, flat = _row_entries(prop, nodes)
    rows, v = prop.a_hat.col_indices()[flat], prop.a_hat.values()[flat]
    order = torch.argsort(rows * nodes.numel() + pos)
    return rows[order], pos[order], v[order]


def exact_meta_gradient(adj: torch.Tensor, p: MetaProblem, unroll: bool = True) -> torch.Tensor:
    """:func:`exact_meta_scores` of the dense ``adj: (N, N)`` as a dense ``(N, N)`` matrix."""
    return exact_meta_scores(Propagation.from_dense(adj), p, unroll).dense()


#: A-Meta's score is formed as one ``(N, N)`` matrix up to this many entries (faster than factors)
WHOLE_ENTRIES = 2**24


def approx_meta_scores(prop: Propagation, p: MetaProblem, generator: torch.Generator,
                       whole: bool | None = None) -> PairScores:
    """Sum over ``p.steps`` Adam steps of the attack-loss gradient at the current weights.

    Weights are drawn afresh from ``generator`` (as in the authors' code). The training
    gradients are written out by hand (``∂/∂W1 = Xᵀ Â² E_L (G W2ᵀ)``), which keeps
    autograd away from the sparse products. ``M = Σ_t F_t (X W1_t)ᵀ`` has rank
    ``T·h``: the factors are ``(N, 4Th)``. ``whole``: form the ``(N, N)`` score at once
    (:meth:`PairScores.from_low_rank`) instead of factors; default: up to ``WHOLE_ENTRIES``.
    """
    d, dev = p.x.size(1), p.targets.device
    w1 = glorot(d, p.hidden, generator, p.dtype).to(dev)
    w2 = glorot(p.hidden, p.num_classes, generator, p.dtype).to(dev)
    w1.grad, w2.grad = torch.zeros_like(w1), torch.zeros_like(w2)
    opt = torch.optim.Adam([w1, w2], lr=p.approx_lr)
    n_l = p.idx_train.numel()
    e = torch.zeros(p.x.size(0), n_l, dtype=p.dtype, device=dev)
    e[p.idx_train, torch.arange(n_l, device=dev)] = 1
    z2 = prop(e, 2)  # Â² E_L, (N, n_L)
    del e
    fs, vs = [], []
    for _ in range(p.steps):
        xw1 = p.x @ w1
        s = prop(xw1, 2)
        with torch.enable_grad():
            s_leaf = s.requires_grad_(True)
            (f,) = torch.autograd.grad(attack_loss(s_leaf @ w2, p), [s_leaf])
        fs.append(f)
        vs.append(xw1.detach())
        s_l = s[p.idx_train].detach()
        g = (torch.softmax(s_l @ w2, dim=1) - p.onehot_train) / n_l
        w2.grad.copy_(s_l.t() @ g)
        w1.grad.copy_(p.xt @ (z2 @ (g @ w2.t())))
        opt.step()
    with torch.no_grad():
        u, v = torch.cat(fs, 1), torch.cat(vs, 1)
        n = u.size(0)
        if whole or (whole is None and n * n <= WHOLE_ENTRIES):
            return PairScores.from_low_rank(prop, u, v)
        left, right = _symmetric(prop, u, v)
        return PairScores(left, right, prop.s)._finish(prop)


def approx_meta_gradient(adj: torch.Tensor, p: MetaProblem, generator: torch.Generator) -> torch.Tensor:
    """:func:`approx_meta_scores` of the dense ``adj: (N, N)`` as a dense ``(N, N)`` matrix."""
    return approx_meta_scores(Propagation.from_dense(adj), p, generator).dense()


def reference_meta_gradient(adj: torch.Tensor, p: MetaProblem, unroll: bool = True) -> torch.Tensor:
    """Textbook meta-gradient: dense autograd through the unrolled training (slow; tests).

    Trains ``W1, W2`` directly with ``create_graph=True`` and differentiates the attack
    loss with respect to the dense adjacency; symmetrised for undirected flips.
    """
    x = dense(p.x)
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
