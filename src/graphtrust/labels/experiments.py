"""What the label-poisoning chapter's experiments share: the attacks by name and their cost.

* :class:`Attacker` runs every attack of :data:`ATTACKS` by name on one dataset, caching
  what several pools, victims and protocol rows share (``Â²X``, the NTK, the poisoned
  labels of each (attack, budget, pool)).
* :func:`cost` times each attack on one pool, as a user attacking a single pool pays it.
* :func:`representations` shows what poisoning does to a GCN's hidden layer.

The experiments themselves (the main table ``label_attacks``, the pitfall rows
``label_pitfalls``) are on the book's harness, in :mod:`.cells`::

    GRAPHTRUST_PROFILE=full python -m graphtrust.experiments label_attacks \\
        --out book/results/label_attacks_full.jsonl [--only victim=mlp]
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from .. import config
from ..splits import Split
from .attacks import (
    LabelAttack,
    attacker_labels,
    bin_pair,
    degree_attack,
    label_budget,
    lafak_attack,
    linear_surrogate_attack,
    lp_attack,
    mg_attack,
    random_attack,
)
from .meta import meta_attack
from .protocol import corrected_protocol
from .surrogates import gcn_ntk, lafak_map, ntk_map, sgc_features, sgc_map

__all__ = ["ATTACKS", "PREVIOUS", "Attacker", "cost", "representations"]

#: every attack, in the order of the chapter's tables; ``name:pseudo`` uses pseudo-labels
ATTACKS = ("random", "random-bin", "degree", "degree-bin", "lp", "mg", "lafak", "lafak-topb",
           "sgc", "sgc-bin", "ntk", "ntk-bin", "meta", "meta-bin")  # fmt: skip
#: the attacks that predate the paper (the "previous best" is the strongest of these);
#: "lafak" is LafAK as released, "lafak-topb" our first version of it (see ``lafak_attack``)
PREVIOUS = ("random", "random-bin", "degree", "degree-bin", "lp", "mg", "lafak", "lafak-topb")


class Attacker:
    """Runs label attacks on one dataset, caching what does not depend on the pool.

    ``Â²X`` (SGC features) and the GCN NTK are computed once per dataset; the ridge and
    kernel maps once per (pool, targets); the poisoned labels once per (attack, budget,
    pool) — so every victim and every protocol step sees the same poisoned labels.
    ``seconds[attack]`` collects the wall time of each attack, including the per-pool maps
    it needs but not the per-dataset precomputation (``setup_seconds``). ``ntk_variant``
    chooses the kernel of the NTK attacks (see :func:`~.surrogates.gcn_ntk`).
    """

    def __init__(self, data: Data, seed: int = 0, ntk_variant: str = "exact"):
        self.data, self.seed, self.ntk_variant = data, seed, ntk_variant
        self._xhat: torch.Tensor | None = None
        self._theta: torch.Tensor | None = None
        self._maps: dict[tuple, torch.Tensor] = {}
        self._labels: dict[tuple, LabelAttack] = {}
        self.setup_seconds: dict[str, float] = {}
        self.seconds: dict[str, list[float]] = {}

    @property
    def xhat(self) -> torch.Tensor:
        if self._xhat is None:
            t = time.perf_counter()
            self._xhat = sgc_features(self.data.x.double(), self.data.edge_index)
            self.setup_seconds["sgc_features"] = time.perf_counter() - t
        return self._xhat

    @property
    def theta(self) -> torch.Tensor:
        if self._theta is None:
            t = time.perf_counter()
            self._theta = gcn_ntk(self.data.x.double(), self.data.edge_index, variant=self.ntk_variant)
            self.setup_seconds["ntk_kernel"] = time.perf_counter() - t
        return self._theta

    def _map(self, kind: str, pool: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        key = (kind, _key(pool), _key(targets))
        if key not in self._maps:
            self._maps[key] = sgc_map(self.xhat, pool, targets) if kind == "sgc" else ntk_map(self.theta, pool, targets)
        return self._maps[key]

    def attack(self, name: str, fraction: float, pool: torch.Tensor, targets: torch.Tensor) -> LabelAttack:
        """Poisoned labels of attack ``name`` at budget ``ceil(fraction · |pool|)``."""
        key = (name, fraction, _key(pool), _key(targets))
        if key in self._labels:
            return self._labels[key]
        base, _, knowledge = name.partition(":")
        knowledge = knowledge or "true"
        if base not in ATTACKS:
            raise KeyError(f"unknown attack {name!r}; one of {', '.join(ATTACKS)} (optionally ':pseudo')")
        d, y, b = self.data, self.data.y, label_budget(fraction, pool.numel())
        binary = base.endswith("-bin")
        t = time.perf_counter()
        if base in ("random", "random-bin"):
            res = random_attack(y, pool, b, binary=binary, seed=self.seed)
        elif base in ("degree", "degree-bin"):
            res = degree_attack(y, pool, b, d.edge_index, binary=binary, seed=self.seed)
        elif base == "mg":
            res = mg_attack(d.x, d.edge_index, y, pool, targets, b)
        else:
            original = base == "lafak"  # LafAK as released targets every unlabelled node
            if original:
                targets = torch.ones(y.numel(), dtype=torch.bool).index_fill_(0, pool, False).nonzero().view(-1)
            seen = attacker_labels(y, pool, targets, self.xhat.float(), knowledge)
            assumed = y.clone()  # the labels the attacker works with: pool + true or pseudo targets
            assumed[targets] = seen
            known = y if knowledge == "true" else torch.cat([y[pool], seen])
            pair = bin_pair(known, y[pool])
            if base == "lp":
                res = lp_attack(d.x, y, pool, targets, seen, b, pair=pair)
            elif base in ("lafak", "lafak-topb"):
                m = lafak_map(d.x, d.edge_index, pool, targets, assumed, pair)
                res = lafak_attack(y, pool, targets, seen, m, b, original=original, pair=pair, seed=self.seed)
            elif base in ("sgc", "sgc-bin", "ntk", "ntk-bin"):
                kind = base.split("-")[0]
                res = linear_surrogate_attack(y, pool, targets, seen, self._map(kind, pool, targets), b,
                                              binary=binary, name=base, pair=pair)
            else:  # meta, meta-bin
                res = meta_attack(d.x, d.edge_index, y, pool, targets, seen, b, binary=binary, pair=pair,
                                  seed=self.seed)
        self.seconds.setdefault(name, []).append(time.perf_counter() - t)
        self._labels[key] = res
        return res

    def poison(self, name: str | None, fraction: float) -> Callable[[torch.Tensor, torch.Tensor, Split], torch.Tensor] | None:
        """The ``poison(y, pool, split)`` callable of :func:`~.protocol.evaluate` (``None``: clean)."""
        if name is None or fraction == 0:
            return None
        return lambda y, pool, split: self.attack(name, fraction, pool, split.test).labels


def _key(t: torch.Tensor) -> str:
    return hashlib.sha1(t.cpu().numpy().tobytes()).hexdigest()


def cost(data: Data, fraction: float = 0.2, pool_size: int = 140, seed: int = 0,
         attacks: tuple[str, ...] = ATTACKS) -> dict[str, float]:
    """Wall time (s) of each attack on one random pool, per-dataset precomputation included.

    Each attack starts from a fresh :class:`Attacker`, so SGC/LafAK pay for ``Â²X`` and NTK
    for the kernel, as a user attacking one pool would.
    """
    split = corrected_protocol(pool_size=pool_size).draw(data.y, seed)
    out = {}
    for name in attacks:
        attacker = Attacker(data, seed)
        t = time.perf_counter()
        attacker.attack(name, fraction, split.train, split.test)
        out[name] = round(time.perf_counter() - t, 4)
    return out


def representations(data: Data, split: Split, poisoned: torch.Tensor, *, seed: int = 0,
                    epochs: int = 200) -> dict[str, Any]:
    """How training on ``poisoned`` labels moves a GCN's hidden representation.

    Trains the same GCN (same seed, same pool; no validation set, fixed epochs) once on the
    clean and once on the poisoned labels of ``split.train`` and returns both hidden
    representations of the test nodes projected on the two leading principal axes of the
    *clean* one (``clean_2d``, ``poisoned_2d``: ``(|test|, 2)``), plus a **linear probe**:
    the accuracy of a logistic regression fitted on the clean labels of half the test nodes
    and scored on the other half. The probe asks whether the representation itself still
    separates the classes, whatever the poisoned output layer does.
    """
    from ..models import LogisticRegression, sparse_features
    from ..training import evaluate as eval_acc
    from ..training import fit
    from .victims import build_victim

    empty = torch.empty(0, dtype=torch.long)
    c = int(data.y.max()) + 1
    x = sparse_features(data.x)
    test = split.test
    perm = test[torch.randperm(test.numel(), generator=torch.Generator().manual_seed(seed))]
    half_a, half_b = perm[: perm.numel() // 2], perm[perm.numel() // 2:]
    out: dict[str, Any] = {"labels": data.y[test].tolist()}
    basis = None
    for which, labels in (("clean", data.y), ("poisoned", poisoned)):
        config.seed_everything(seed)
        model = build_victim("gcn", data.num_features, c)
        res = fit(model, x, data.edge_index, labels, Split(split.train, empty, test), epochs=epochs, patience=None)
        h = res.model.embed(x, data.edge_index)
        if basis is None:
            mean = h[test].mean(0)
            _, _, v = torch.linalg.svd(h[test] - mean, full_matrices=False)
            basis = (mean, v[:2].t())
        out[f"{which}_2d"] = ((h[test] - basis[0]) @ basis[1]).tolist()
        out[f"{which}_accuracy"] = res.test_acc
        hn = F.normalize(h, dim=1)
        config.seed_everything(seed)
        probe = fit(LogisticRegression(h.size(1), c), hn, None, data.y, Split(half_a, empty, empty), epochs=300,
                    patience=None, lr=0.05, weight_decay=1e-4).model
        out[f"{which}_probe"] = eval_acc(probe, hn, None, data.y, half_b)
    return out
