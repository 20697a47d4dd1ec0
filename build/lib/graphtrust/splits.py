"""Train/validation/test splits and labelled pools.

* :func:`stratified_split` — class-proportional fractions (Metattack's 10/10/80 protocol).
* :func:`class_balanced_split` — a fixed number of nodes per class (Planetoid's 20 per class).
* :func:`random_pool` — a random labelled pool, *not* class-equalised (the corrected
  protocol of the label-poisoning chapter).

All take ``y: (N,) long`` and a seed and return a :class:`Split` of index tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Split", "stratified_split", "class_balanced_split", "random_pool"]


@dataclass(frozen=True)
class Split:
    """Disjoint node index sets, each ``(n_i,) long``."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor

    def __post_init__(self) -> None:
        parts = [self.train, self.val, self.test]
        joined = torch.cat(parts)
        if joined.numel() != torch.unique(joined).numel():
            raise ValueError("train, val and test indices overlap")

    @property
    def unlabelled(self) -> torch.Tensor:
        """Validation and test nodes together (what a structure attack tries to misclassify)."""
        return torch.cat([self.val, self.test]).sort().values

    def to(self, device: torch.device | str) -> Split:
        return Split(self.train.to(device), self.val.to(device), self.test.to(device))

    def sizes(self) -> tuple[int, int, int]:
        return self.train.numel(), self.val.numel(), self.test.numel()

    @classmethod
    def from_masks(cls, data) -> Split:
        """The split stored as ``train_mask``/``val_mask``/``test_mask`` on a PyG ``Data``."""
        idx = [m.nonzero().view(-1) for m in (data.train_mask, data.val_mask, data.test_mask)]
        return cls(*idx)


def _check_labels(y: torch.Tensor) -> torch.Tensor:
    if y.dim() != 1 or y.numel() == 0:
        raise ValueError(f"y must be a non-empty 1-D tensor of class ids, got shape {tuple(y.shape)}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"y must hold integer class ids, got {y.dtype}")
    if int(y.min()) < 0:
        raise ValueError("y holds negative class ids")
    return y.cpu().long()


def _count(size: float | int, n: int, what: str) -> int:
    if isinstance(size, bool) or size < 0:
        raise ValueError(f"{what} must be a non-negative fraction or count, got {size!r}")
    if isinstance(size, float):
        if size > 1:
            raise ValueError(f"{what} as a fraction must be <= 1, got {size}")
        return int(round(size * n))
    return int(size)


def _allocate(total: int, counts: torch.Tensor, minimum: int = 0) -> torch.Tensor:
    """Split ``total`` over classes proportionally to ``counts`` (largest remainder)."""
    share = counts.double() * total / counts.sum()
    alloc = torch.maximum(share.floor().long(), torch.full_like(counts, minimum)).minimum(counts)
    rest = total - int(alloc.sum())
    frac = share - share.floor()
    for c in torch.argsort(frac, descending=True).tolist():
        if rest <= 0:
            break
        if alloc[c] < counts[c]:
            alloc[c] += 1
            rest -= 1
    return alloc


def stratified_split(
    y: torch.Tensor,
    train_size: float | int = 0.1,
    val_size: float | int = 0.1,
    test_size: float | int | None = None,
    seed: int = 0,
) -> Split:
    """Class-stratified random split; sizes are fractions of N (float) or counts (int).

    Each class gets its share of every set (largest-remainder rounding, so the totals are
    exact) and at least one training node. ``test_size=None`` takes all remaining nodes.
    """
    y = _check_labels(y)
    n = y.numel()
    n_train, n_val = _count(train_size, n, "train_size"), _count(val_size, n, "val_size")
    n_test = n - n_train - n_val if test_size is None else _count(test_size, n, "test_size")
    if n_train + n_val + n_test > n or min(n_train, n_val, n_test) < 0:
        raise ValueError(f"split sizes {n_train}+{n_val}+{n_test} exceed the {n} nodes")
    counts = torch.bincount(y)
    present = counts > 0
    if n_train < int(present.sum()):
        raise ValueError(
            f"train_size gives {n_train} nodes, fewer than the {int(present.sum())} classes"
        )
    gen = torch.Generator().manual_seed(seed)
    a_train = _allocate(n_train, counts, minimum=1) * present
    left = counts - a_train
    a_val = _allocate(n_val, left) if n_val else torch.zeros_like(counts)
    left = left - a_val
    a_test = _allocate(n_test, left) if n_test else torch.zeros_like(counts)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for c in range(counts.numel()):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        a, b, t = int(a_train[c]), int(a_val[c]), int(a_test[c])
        parts[0].append(idx[:a])
        parts[1].append(idx[a : a + b])
        parts[2].append(idx[a + b : a + b + t])
    return Split(*(torch.cat(p).sort().values for p in parts))


def class_balanced_split(
    y: torch.Tensor, per_class: int = 20, num_val: int = 500, num_test: int = 1000, seed: int = 0
) -> Split:
    """``per_class`` training nodes of every class, then random validation and test nodes."""
    y = _check_labels(y)
    counts = torch.bincount(y)
    if int(counts[counts > 0].min()) < per_class:
        raise ValueError(
            f"a class has only {int(counts[counts > 0].min())} nodes, fewer than per_class={per_class}"
        )
    gen = torch.Generator().manual_seed(seed)
    train = []
    for c in (counts > 0).nonzero().view(-1).tolist():
        idx = (y == c).nonzero().view(-1)
        train.append(idx[torch.randperm(idx.numel(), generator=gen)[:per_class]])
    train_idx = torch.cat(train)
    mask = torch.ones(y.numel(), dtype=torch.bool)
    mask[train_idx] = False
    rest = mask.nonzero().view(-1)
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    if num_val + num_test > rest.numel():
        raise ValueError(f"num_val + num_test = {num_val + num_test} exceeds the {rest.numel()} nodes left")
    return Split(
        train_idx.sort().values,
        rest[:num_val].sort().values,
        rest[num_val : num_val + num_test].sort().values,
    )


def random_pool(
    y: torch.Tensor, pool_size: int, num_test: int | None = None, seed: int = 0
) -> Split:
    """A uniformly random labelled pool of ``pool_size`` nodes (not class-equalised).

    The pool is returned as ``train`` (the defender splits it further, e.g. by k-fold
    cross-validation); ``val`` is empty; ``test`` holds ``num_test`` random other nodes
    (all of them when ``None``). Raises if the pool holds fewer than two classes.
    """
    y = _check_labels(y)
    n = y.numel()
    if not 0 < pool_size < n:
        raise ValueError(f"pool_size must lie in (0, {n}), got {pool_size}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    pool, rest = perm[:pool_size], perm[pool_size:]
    if torch.unique(y[pool]).numel() < 2:
        raise ValueError("the labelled pool holds a single class; draw a larger pool")
    test = rest if num_test is None else rest[:num_test]
    return Split(pool.sort().values, torch.empty(0, dtype=torch.long), test.sort().values)
