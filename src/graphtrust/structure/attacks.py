"""Global structure poisoning attacks: Metattack (exact and approximate), first order, DICE, random.

One entry point, :func:`attack`, runs any of them on a PyG ``Data`` with a labelled split
and returns an :class:`AttackResult`: the perturbed graph and the ordered list of flips.
Every method is seeded, runs on CPU or GPU unchanged, respects the budget exactly, never
creates a singleton node, never flips a pair twice, and (optionally) keeps the degree
distribution's power law (:mod:`.constraints`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch_geometric.data import Data

from .. import config
from ..graph import as_operator, from_dense, to_dense
from ..models import GCN, sparse_features
from ..progress import progress
from ..splits import Split
from ..training import fit
from .constraints import degree_test_block, degree_test_statistic
from .metagradient import (
    MetaProblem,
    PairScores,
    approx_meta_scores,
    exact_meta_scores,
    training_curve,
)
from .surrogate import Propagation
from .victims import RECIPES

__all__ = ["METHODS", "MODES", "Mode", "STEP_LADDER", "choose_steps", "AttackResult", "attack", "block_rows", "budget_flips", "self_training_labels"]

# method -> (kind, lambda of the attack loss)
METHODS: dict[str, tuple[str, float | None]] = {
    "random": ("random", None),
    "dice": ("dice", None),
    "first-order": ("first-order", 0.0),
    "a-meta-self": ("approx", 0.0),
    "a-meta-train": ("approx", 1.0),
    "a-meta-both": ("approx", 0.5),
    "meta-self": ("exact", 0.0),
    "meta-train": ("exact", 1.0),
}


@dataclass
class AttackResult:
    """A perturbed graph and how it was obtained.

    ``flips: (k, 2) long`` with ``u < v`` in the order chosen; ``inserted: (k,) bool``;
    ``edge_index: (2, 2E')`` of the perturbed graph (both directions).
    """

    method: str
    edge_index: torch.Tensor
    flips: torch.Tensor
    inserted: torch.Tensor
    budget: int
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_per_flip(self) -> float:
        return self.seconds / max(self.budget, 1)

    def perturbed(self, data: Data) -> Data:
        """A copy of ``data`` with the perturbed edges."""
        out = data.clone()
        out.edge_index = self.edge_index.to(data.edge_index.device)
        return out

    def validate(self, clean_edge_index: torch.Tensor, num_nodes: int, ll_constraint: bool = False) -> None:
        """Raise ``AssertionError`` unless the result is a valid attack on the clean graph."""
        clean = to_dense(clean_edge_index.cpu(), num_nodes)
        adj = to_dense(self.edge_index.cpu(), num_nodes)
        assert torch.equal(adj, adj.t()), "perturbed graph is not symmetric"
        assert bool(adj.diagonal().eq(0).all()), "perturbed graph has self-loops"
        diff = (adj - clean).abs().triu(1)
        assert int(diff.sum()) == self.budget == self.flips.size(0), (
            f"{int(diff.sum())} pairs differ, budget {self.budget}, {self.flips.size(0)} flips recorded"
        )
        fl = self.flips.cpu()
        assert bool((diff[fl[:, 0], fl[:, 1]] == 1).all()), "recorded flips do not match the graph"
        assert bool((adj[fl[:, 0], fl[:, 1]].bool() == self.inserted.cpu()).all())
        clean_deg, deg = clean.sum(1), adj.sum(1)
        assert not bool(((deg == 0) & (clean_deg > 0)).any()), "the attack created a singleton"
        if ll_constraint:
            assert degree_test_statistic(clean_deg, deg) < 0.004, "degree test violated"


def budget_flips(budget: int | float, num_edges: int, num_pairs: int) -> int:
    """Number of flips: an int is taken as is, a float as a fraction of the clean edges."""
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise TypeError(f"budget must be an int (flips) or a float (fraction of edges), got {budget!r}")
    flips = int(budget * num_edges) if isinstance(budget, float) else budget
    if flips <= 0:
        raise ValueError(f"budget must be positive: {budget!r} gives {flips} flips")
    if flips > num_pairs:
        raise ValueError(f"budget of {flips} flips exceeds the {num_pairs} admissible node pairs")
    return flips


def _check(data: Data, split: Split) -> tuple[torch.Tensor, int]:
    n = data.num_nodes
    ei = data.edge_index
    if ei.numel() == 0:
        raise ValueError("the graph has no edges")
    if getattr(data, "edge_weight", None) is not None or getattr(data, "edge_attr", None) is not None:
        raise ValueError("weighted graphs are not supported: structure attacks flip binary edges")
    if not data.is_undirected():
        raise ValueError("the graph is directed: structure attacks need an undirected edge_index")
    if data.has_self_loops():
        raise ValueError("the graph has self-loops; remove them first")
    tr = split.train
    if tr.numel() == 0:
        raise ValueError("the training set is empty")
    if int(tr.min()) < 0 or int(tr.max()) >= n:
        raise ValueError(f"training indices out of range for {n} nodes")
    num_classes = int(data.y.max()) + 1
    missing = sorted(set(range(num_classes)) - set(data.y[tr].tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no labelled node in the training set")
    return ei, num_classes


def self_training_labels(data: Data, split: Split, seed: int = 0, device: torch.device | None = None,
                         recipe: str = "ours") -> torch.Tensor:
    """The attacker's labels: true on the labelled nodes, a linear GCN's predictions elsewhere.

    The surrogate is the linearised two-layer GCN (hidden 16, dropout 0.5, Adam 0.01,
    weight decay 5e-4, 200 epochs), as in the authors' demo. ``recipe="ours"``: no biases,
    decay on both layers; ``"authors"``: biases, decay on the first layer only (their
    TensorFlow model).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; one of {', '.join(RECIPES)}")
    dev = device or config.device()
    config.seed_everything(seed)
    model = GCN(data.num_features, 16, int(data.y.max()) + 1, activation=None, bias=recipe == "authors")
    train_only = Split(split.train, torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    x = sparse_features(data.x).to(dev)  # the same function, 4x faster on bag-of-words features
    res = fit(model, x, data.edge_index, data.y, train_only, epochs=200, patience=None, device=dev,
              decay=RECIPES[recipe])
    with torch.no_grad():
        pred = res.model(x, data.edge_index.to(dev)).argmax(1).cpu()
    pred[split.train] = data.y[split.train]
    return pred


@dataclass(frozen=True)
class Mode:
    """How a gradient attack is set up: see :data:`MODES`."""

    name: str
    reinit: bool  # redraw the surrogate's initial weights θ₀ before every flip
    steps: int | None  # inner training steps T (None: the caller's, or the fit ladder)
    fit_steps: bool  # choose T on the clean graph: the smallest of STEP_LADDER that fits
    recipe: str  # self-training surrogate and victims (victims.RECIPES)
    doc: str


#: the inner training steps ``strong`` tries, in order
STEP_LADDER = (100, 200, 400, 800)

MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("ours", True, None, False, "ours",
         "the library's defaults: θ₀ redrawn before every flip (as DeepRobust), T as given (100 unless "
         "set), the self-training surrogate without biases and every layer decayed"),
    Mode("paper", False, 100, False, "authors",
         "the authors' TensorFlow code as far as the facts allow: one θ₀ for all flips, T = 100, SGD with "
         "lr 0.1 and momentum 0.9, self-training surrogate and victims with biases and weight decay on "
         "the first layer only; their split (sklearn, seed 15) is not reproduced"),
    Mode("strong", False, None, True, "authors",
         "the paper's mode with the inner training run until the surrogate fits: T is the smallest of "
         "STEP_LADDER whose training loss on the clean graph is below FIT_LOSS, and the fit is recorded "
         "at every flip"),
)}


def choose_steps(data: Data, split: Split, lr: float = 0.1, momentum: float = 0.9, hidden: int = 16,
                 seed: int = 0, ladder: tuple[int, ...] = STEP_LADDER, device=None) -> tuple[int, list]:
    """The smallest ``T`` of ``ladder`` after which the surrogate's training loss on the clean
    graph is below :data:`FIT_LOSS`; and the curve ``[(loss, accuracy), …]`` up to ``max(ladder)``.

    Warns and returns ``max(ladder)`` when none fits.
    """
    dev = torch.device(device) if device is not None else config.device()
    ei, num_classes = _check(data, split)
    n = data.num_nodes
    unlabeled = torch.ones(n, dtype=torch.bool)
    unlabeled[split.train] = False
    p = MetaProblem(x=as_operator(data.x.to(dev)), targets=data.y.to(dev), idx_train=split.train.to(dev),
                    idx_unlabeled=unlabeled.nonzero().view(-1).to(dev), num_classes=num_classes,
                    hidden=hidden, lr=lr, momentum=momentum)
    p.reinitialize(torch.Generator().manual_seed(seed))
    curve = training_curve(Propagation.from_keys(_keys(ei.to(dev), n), n, p.dtype), p, max(ladder))
    for t in sorted(ladder):
        if curve[t][0] < FIT_LOSS:
            return t, curve
    warnings.warn(f"the surrogate does not fit within T = {max(ladder)} steps (training loss "
                  f"{curve[-1][0]:.2f}); using T = {max(ladder)}", stacklevel=2)
    return max(ladder), curve


def attack(
    data: Data,
    split: Split,
    method: str,
    budget: int | float,
    *,
    seed: int = 0,
    steps: int | None = None,
    hidden: int = 16,
    lr: float = 0.1,
    momentum: float = 0.9,
    approx_lr: float = 0.01,
    ll_constraint: bool = False,
    reinit: bool | None = None,
    labels: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    show_progress: bool = True,
    block_rows: int | None = None,
    mode: str = "ours",
) -> AttackResult:
    """Poison the structure of ``data`` with ``method`` (see :data:`METHODS`).

    ``budget``: number of flips (int) or a fraction of the clean undirected edges (float).
    ``labels``: the attacker's labels for DICE and the attack loss; by default true labels
    on ``split.train`` and self-training predictions elsewhere (the attacker never sees
    the labels of unlabelled nodes). ``steps``/``lr``/``momentum``: the unrolled SGD of
    the exact attacks; ``approx_lr``: Adam for A-Meta. ``reinit``: draw the surrogate's
    initial weights afresh before every flip (as DeepRobust; the authors' TensorFlow code
    reuses one draw, ``reinit=False``). ``mode`` (:data:`MODES`: ``ours``, ``paper``,
    ``strong``) sets ``reinit``, ``steps`` and the self-training recipe unless they are
    given; ``strong`` chooses ``steps`` with :func:`choose_steps`. ``block_rows``: rows of the score scanned at once by
    the gradient attacks (default: :func:`block_rows`); no ``(N, N)`` matrix is formed
    unless a block holds every row. Returns an :class:`AttackResult`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    kind, lam = METHODS[method]
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    md = MODES[mode]
    reinit = md.reinit if reinit is None else reinit
    ei, num_classes = _check(data, split)
    n = data.num_nodes
    num_edges = ei.size(1) // 2
    flips_needed = budget_flips(budget, num_edges, n * (n - 1) // 2)
    dev = torch.device(device) if device is not None else config.device()
    if steps is None:
        if md.steps is not None:
            steps = md.steps
        elif md.fit_steps and kind in ("exact", "first-order"):
            steps, _ = choose_steps(data, split, lr, momentum, hidden, seed, device=dev)
        else:
            steps = 100
    if kind in ("exact", "approx", "first-order") and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps (T, the surrogate's training steps) must be a positive int, got {steps!r}")
    if block_rows is not None and block_rows < 1:
        raise ValueError(f"block_rows must be positive, got {block_rows!r}")
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    if labels is None and kind != "random":
        labels = self_training_labels(data, split, seed=seed, device=dev, recipe=md.recipe)
    deg_clean = torch.bincount(ei[0].to(dev), minlength=n).float()
    unlabeled = torch.ones(n, dtype=torch.bool)
    unlabeled[split.train] = False
    params: dict[str, Any] = {"seed": seed, "ll_constraint": ll_constraint, "mode": mode}

    if kind in ("exact", "approx", "first-order"):
        problem = MetaProblem(
            x=as_operator(data.x.to(dev)),
            targets=labels.to(dev),
            idx_train=split.train.to(dev),
            idx_unlabeled=unlabeled.nonzero().view(-1).to(dev),
            num_classes=num_classes,
            hidden=hidden,
            steps=steps,
            lr=lr,
            momentum=momentum,
            lam=lam,
            approx_lr=approx_lr,
        )
        problem.reinitialize(gen)
        params.update(steps=steps, hidden=hidden, lr=lr, momentum=momentum, lam=lam, reinit=reinit)
        if kind == "approx":
            params.update(approx_lr=approx_lr)

        def score(prop: Propagation) -> PairScores:
            if kind == "approx":  # asked-for blocks: factors, else one matrix where it fits
                return approx_meta_scores(prop, problem, gen, whole=None if block_rows is None else block_rows >= n)
            if reinit:
                problem.reinitialize(gen)
            out = exact_meta_scores(prop, problem, unroll=(kind == "exact"))
            fit.append(out.fit)
            return out

        fit: list[tuple[float, float]] = []
        keys = _keys(ei.to(dev), n)
        keys, flips, inserted = _greedy(keys, n, score, flips_needed, deg_clean, ll_constraint, method,
                                        show_progress, problem.dtype, block_rows)
        adj = None
        if fit:
            params["surrogate_loss"] = [round(f[0], 5) for f in fit]
            params["surrogate_accuracy"] = [round(f[1], 5) for f in fit]
            _check_fit(fit, steps, method)
    else:
        adj = to_dense(ei.to(dev), n)
        flips, inserted = _sample(adj, kind, labels, flips_needed, deg_clean, ll_constraint, gen, method, show_progress)
    seconds = time.perf_counter() - start
    edge_index = from_dense(adj).cpu() if adj is not None else torch.stack([keys // n, keys % n]).cpu()
    return AttackResult(method, edge_index, flips, inserted, flips_needed, seconds, params)


def _admissible(adj, u, v, deg, deg_clean, ll_constraint) -> bool:
    if u == v:
        return False
    if adj[u, v] > 0 and (deg[u] <= 1 or deg[v] <= 1):
        return False
    if ll_constraint:
        delta = 1.0 - 2.0 * float(adj[u, v])
        new = deg.clone()
        new[u] += delta
        new[v] += delta
        return degree_test_statistic(deg_clean, new) < 0.004
    return True


def _sample(adj, kind, labels, budget, deg_clean, ll_constraint, gen, desc, show_progress):
    """Random flips (``random``) or DICE flips, by rejection sampling of single pairs.

    DICE: with probability 1/2 delete a random edge inside a class, else insert a random
    non-edge between two classes ("delete internally, connect externally").
    """
    n = adj.size(0)
    flips = torch.empty(budget, 2, dtype=torch.long)
    inserted = torch.empty(budget, dtype=torch.bool)
    done: set[tuple[int, int]] = set()
    lab = labels.cpu() if labels is not None else None
    deg = adj.sum(1).cpu()
    a_cpu = adj.cpu()
    if kind == "dice":  # edges inside a class; DICE never adds to this list
        internal = a_cpu.triu(1).nonzero()
        internal = internal[lab[internal[:, 0]] == lab[internal[:, 1]]]
    for i in progress(range(budget), desc=desc, enabled=show_progress):
        for _attempt in range(100_000):
            if kind == "dice" and torch.rand((), generator=gen) < 0.5:
                if internal.numel() == 0:
                    continue
                u, v = internal[int(torch.randint(internal.size(0), (), generator=gen))].tolist()
            else:
                u, v = sorted(torch.randint(n, (2,), generator=gen).tolist())
                if kind == "dice" and (a_cpu[u, v] > 0 or lab[u] == lab[v]):
                    continue
            if (u, v) in done or not _admissible(a_cpu, u, v, deg, deg_clean.cpu(), ll_constraint):
                continue
            break
        else:
            raise RuntimeError(f"no admissible flip found after {i} of {budget} flips")
        new = 1.0 - float(a_cpu[u, v])
        a_cpu[u, v] = a_cpu[v, u] = new
        deg[u] += 2 * new - 1
        deg[v] += 2 * new - 1
        done.add((u, v))
        flips[i, 0], flips[i, 1] = u, v
        inserted[i] = new == 1.0
    adj.copy_(a_cpu.to(adj.device))
    return flips, inserted


#: below this many entries the score is scanned in ``SMALL_BLOCKS`` row blocks (each block
#: computes only the columns right of its first row, so four blocks skip 3/8 of the
#: matrix; fastest for Cora-sized graphs), above it in blocks of about ``BLOCK_ENTRIES``
#: entries (2^22: 212 rows at PubMed's size, 3.9-4.2 s per flip against 4.4 s with 2^20 on
#: 2 CPU cores; see ``python -m graphtrust.bench metattack --block-rows``).
#: A-Meta's score is one whole matrix up to ``metagradient.WHOLE_ENTRIES`` and scanned at once.
DENSE_ENTRIES = 2**24
BLOCK_ENTRIES = 2**22
SMALL_BLOCKS = 4
#: on a GPU, blocks of this many entries (512 MiB in float32): small blocks leave it idle
#: (arxiv-sized SBM on an H200: 24-row blocks 10.1 s per flip, 1,024-row blocks 2.1 s)
BLOCK_ENTRIES_CUDA = 2**27


def block_rows(n: int, device: torch.device | str | None = None) -> int:
    """Rows of the ``(N, N)`` score the greedy scan computes at once for an ``n``-node graph
    (on ``device``: larger blocks on a GPU)."""
    if n * n <= DENSE_ENTRIES:
        return max(8, math.ceil(n / SMALL_BLOCKS))
    entries = BLOCK_ENTRIES_CUDA if device is not None and torch.device(device).type == "cuda" else BLOCK_ENTRIES
    return max(8, min(n, entries // n))


def _keys(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """Sorted ``u·n + v`` of the directed edges."""
    return torch.sort(edge_index[0] * n + edge_index[1]).values


def _range(sorted_keys: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The entries of ``sorted_keys`` in ``[lo, hi)``."""
    a, b = torch.searchsorted(sorted_keys, torch.tensor([lo, hi], device=sorted_keys.device)).tolist()
    return sorted_keys[a:b]


#: a surrogate whose training loss stays above this at step T has not fit its labels
FIT_LOSS = 0.3


def _check_fit(fit: list[tuple[float, float]], steps: int, method: str) -> None:
    """Warn when the inner surrogate ended most flips with a training loss above :data:`FIT_LOSS`."""
    losses = sorted(f[0] for f in fit)
    median = losses[len(losses) // 2]
    if median > FIT_LOSS:
        acc = sorted(f[1] for f in fit)[len(fit) // 2]
        warnings.warn(
            f"{method}: the surrogate has not fit its training labels: median training loss {median:.2f} "
            f"(accuracy {acc:.0%}) after T = {steps} steps, over {len(fit)} flips. The meta-gradient then "
            "describes an under-trained model; raise steps or lr (the losses per flip are in result.params).",
            stacklevel=3,
        )


_LOWER: dict = {}


def _lower(b: int, dtype, device) -> torch.Tensor:
    """``(b, b)``: −inf on and below the diagonal, 0 above (cached)."""
    key = (b, dtype, str(device))
    if key not in _LOWER:
        _LOWER[key] = torch.full((b, b), -math.inf, dtype=dtype, device=device).tril()
    return _LOWER[key]


def _greedy(keys, n, score_fn, budget, deg_clean, ll_constraint, desc, show_progress, dtype, rows=None):
    """Flip, ``budget`` times, the admissible pair ``u < v`` of highest score.

    ``keys``: sorted ``u·n + v`` of the directed edges. Each flip scans the score in blocks
    of ``rows`` rows (the upper triangle only), masks what may not be flipped (pairs
    already flipped, removals that leave a node without neighbours, and the degree test
    with ``ll_constraint``), and keeps the first maximum in row-major order, as a dense
    argmax would. Returns the new keys, ``flips: (budget, 2)`` and ``inserted: (budget,)``.
    """
    dev = keys.device
    deg = torch.bincount(keys // n, minlength=n).to(dtype)
    flipped = torch.empty(0, dtype=torch.long, device=dev)  # sorted u·n + v, u < v
    flips = torch.empty(budget, 2, dtype=torch.long)
    inserted = torch.empty(budget, dtype=torch.bool)
    for i in progress(range(budget), desc=desc, enabled=show_progress):
        scores = score_fn(Propagation.from_keys(keys, n, dtype))
        step = rows or (n if scores.whole is not None else block_rows(n, dev))
        lonely = deg <= 1
        best_vals, best_idx = [], []
        for r0 in range(0, n - 1, step):
            r1 = min(n, r0 + step)
            g = scores.pair_gradient(r0, r1, r0)  # (B, N − r0), columns r0:N
            k = _range(keys, r0 * n, r1 * n)
            k = k[k % n >= r0]
            er, ec = k // n, k % n
            g[er - r0, ec - r0] *= -1  # an existing edge is removed: −∂L/∂a
            g[:, : r1 - r0] += _lower(r1 - r0, g.dtype, dev)  # u < v only
            f = _range(flipped, r0 * n, r1 * n)
            g[f // n - r0, f % n - r0] = -math.inf
            alone = lonely[er] | lonely[ec]  # no singleton
            g[er[alone] - r0, ec[alone] - r0] = -math.inf
            if ll_constraint:
                edge = torch.zeros_like(g, dtype=torch.bool)
                edge[er - r0, ec - r0] = True
                g.masked_fill_(~degree_test_block(deg, deg_clean, edge, r0, r0), -math.inf)
            vals, cols = g.max(1)  # the first maximum of each row
            j = torch.argmax(vals)
            best_vals.append(vals[j])
            best_idx.append(torch.stack([j + r0, cols[j] + r0]))
        b = int(torch.argmax(torch.stack(best_vals)))
        if best_vals[b] == -math.inf:
            raise RuntimeError(f"no admissible flip left after {i} of {budget} flips")
        u, v = best_idx[b].tolist()
        key, rev = u * n + v, v * n + u
        present = bool(torch.isin(torch.tensor(key, device=dev), keys))
        if present:
            keys = keys[~torch.isin(keys, torch.tensor([key, rev], device=dev))]
        else:
            keys = torch.sort(torch.cat([keys, torch.tensor([key, rev], device=dev)])).values
        deg[u] += -1 if present else 1
        deg[v] += -1 if present else 1
        flipped = torch.sort(torch.cat([flipped, torch.tensor([key], device=dev)])).values
        flips[i, 0], flips[i, 1] = u, v
        inserted[i] = not present
    return keys, flips, inserted
