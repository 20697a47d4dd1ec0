"""Every gradient-leakage attack and baseline, by name, on one prepared :class:`Problem`.

A method turns ``(problem, gradient, n, seed)`` into a :class:`~.matching.Reconstruction`.
Methods come in three **families**, and each belongs to a **setting**, what its attacker
holds besides the gradient and the model:

=====================  ===================  ===========================================
family                 method               what it does
=====================  ===================  ===========================================
no gradient            ``random-guess``     uniform edge scores, random one-hot features
no gradient            ``prior-only-*``     the decoder trained to see only ``n``
no gradient            ``random-same-size-*``  one auxiliary-like graph of ``n`` nodes,
                                            drawn at random
gradient               ``dlg``, ``idlg``    gradient matching from random starts
gradient               ``idlg+prior-*``     iDLG, one more start from the prior's output
gradient               ``nearest-auxiliary-*``  the auxiliary graph of ``n`` nodes whose
                                            simulated gradient is closest (retrieval alone)
ours                   ``graphdlg-*``       :func:`~.graphdlg.graphdlg`
ours                   ``twin-random``      :func:`~.twins.twin_attack`: atoms learned from
                                            the random auxiliaries, a gradient twin,
                                            type-pair densities
=====================  ===================  ===========================================

Settings: ``none`` (nothing but the gradient, the model and ``n``), ``random`` (also the
random auxiliary graphs: Erdős–Rényi with the domain's sizes, density and feature count)
and ``client`` (also same-domain graphs, the client-side auxiliaries; an attacker holding
them can draw random ones too). :func:`available` lists the baselines an attacker of a
setting could run, so that a method is compared with the strongest baseline *its*
attacker has. The no-gradient methods never read the gradient (a test feeds them a zeroed
one).

Every method takes ``n``, the victim's node count, as an argument: the main table gives
it (an oracle, stated in the chapter); the ``graphdlg_size`` experiment passes the
estimate of :func:`~.size.estimate_nodes` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import datasets
from ..graph import to_dense
from .decoder import Graph, auxiliary_graphs, retrieve, train_decoder
from .graphdlg import graphdlg
from .leaks import check_gradients, recover_label
from .matching import Reconstruction, dlg, idlg
from .model import GraphClassifier, fedsgd
from .twins import fit_composition, twin_attack

__all__ = ["Problem", "Method", "METHODS", "FAMILIES", "SETTINGS", "method", "available", "run_method"]

FAMILIES = ("no gradient", "gradient", "ours")
SETTINGS = ("none", "random", "client")


class Problem:
    """One dataset prepared for the attacks: victims, pool, model and decoders (lazily).

    ``seed`` draws the victims/pool permutation; ``model_seed`` (default ``seed``) the
    global model's initialisation, so that model seeds can vary over the same victims.
    ``rounds`` > 0 attacks a later round: the global model first trains for that many
    rounds of FedSGD (batch size 1, Adam with learning rate ``lr``) on the pool, the other
    clients' graphs (:func:`~.model.fedsgd`, seeded by ``model_seed``); the victims stay
    unseen."""

    def __init__(self, name: str, sz: Mapping[str, Any], hidden: int | None = None, layers: int | None = None,
                 seed: int = 0, model_seed: int | None = None, rounds: int = 0, lr: float = 0.003):
        ds = datasets.load(name)
        graphs = [(to_dense(g.edge_index, g.num_nodes, torch.float64), g.x.double(), int(g.y))
                  for g in ds if 2 <= g.num_nodes <= sz["n_max"]]
        if len(graphs) <= sz["victims"]:
            raise ValueError(f"{name}: {len(graphs)} graphs with at most {sz['n_max']} nodes, "
                             f"need more than {sz['victims']} victims")
        order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed)).tolist()
        self.name, self.sz = name, sz
        self.victims = [graphs[i] for i in order[: sz["victims"]]]
        self.pool = [graphs[i] for i in order[sz["victims"]:]]
        self.num_features, self.num_classes = ds.num_features, ds.num_classes
        self.n_max = max(a.size(0) for a, _, _ in graphs)
        self.hidden = hidden or sz["hidden"]
        self.layers = layers or sz["layers"]
        self.model_seed = seed if model_seed is None else model_seed
        torch.manual_seed(self.model_seed)
        self.model = GraphClassifier(self.num_features, self.num_classes, hidden=self.hidden, layers=self.layers).double()
        self.rounds = int(rounds)
        if self.rounds:
            fedsgd(self.model, self.pool, self.rounds, lr=lr, seed=self.model_seed)
        self.density = float(np.mean([float(a.sum()) / 2 / a.size(0) for a, _, _ in self.pool]))
        self._decoders: dict[tuple, Any] = {}
        self._aux: dict[tuple, list[Graph]] = {}
        self._compositions: dict[str, Any] = {}

    def aux(self, kind: str, count: int | None = None) -> list[Graph]:
        """The auxiliary graphs of a setting (``"random"`` or ``"client"``), cached."""
        count = count or (self.sz["client_aux"] if kind == "client" else self.sz["random_aux"])
        if (kind, count) not in self._aux:
            self._aux[kind, count] = auxiliary_graphs(
                kind, graphs=self.pool, count=count, sizes=[a.size(0) for a, _, _ in self.pool],
                density=self.density, num_features=self.num_features, num_classes=self.num_classes, seed=1)
        return self._aux[kind, count]

    def decoder(self, kind: str, count: int | None = None, prior: bool = False):
        """The structure decoder trained on a setting's auxiliaries; ``prior=True``: the one
        that sees only ``n`` (what the domain prior gives without the gradient)."""
        key = (kind, count, prior)
        if key not in self._decoders:
            self._decoders[key] = train_decoder(
                self.model, self.aux(kind, count), n_max=self.n_max, epochs=self.sz["decoder_epochs"],
                hidden=self.sz["decoder_hidden"], show_progress=False, observe=_node_count_only if prior else None)
        return self._decoders[key]


    def composition(self, kind: str):
        """The atom-composition regression fitted on a setting's auxiliaries (:mod:`.twins`)."""
        if kind not in self._compositions:
            self._compositions[kind] = fit_composition(self.model, self.aux(kind))
        return self._compositions[kind]


def _node_count_only(model, grads, n):
    return torch.tensor([float(n)], dtype=torch.float64)


Runner = Callable[[Problem, Sequence[torch.Tensor], int, int], Reconstruction]


@dataclass(frozen=True)
class Method:
    """A named attack or baseline: its family, its attacker's setting, a label for tables."""

    name: str
    family: str
    setting: str
    label: str
    run: Runner

    def __post_init__(self):
        if self.family not in FAMILIES or self.setting not in SETTINGS:
            raise ValueError(f"{self.name}: family {self.family!r} / setting {self.setting!r} unknown")


METHODS: dict[str, Method] = {}


def _register(name: str, family: str, setting: str, label: str):
    def wrap(fn: Runner) -> Runner:
        METHODS[name] = Method(name, family, setting, label, fn)
        return fn
    return wrap


def method(name: str) -> Method:
    """The registered method ``name``; ``graphdlg-client@50`` is GraphDLG with a decoder
    trained on 50 client-side auxiliary graphs."""
    base = name.partition("@")[0]
    if base not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[base]


def available(setting: str, family: str | None = None) -> list[str]:
    """Methods an attacker of ``setting`` can run (its own setting's and the weaker ones'),
    optionally of one ``family``."""
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    rank = SETTINGS.index(setting)
    return [m.name for m in METHODS.values()
            if SETTINGS.index(m.setting) <= rank and (family is None or m.family == family)]


def run_method(p: Problem, name: str, grads: Sequence[torch.Tensor], n: int, *, seed: int = 0,
               **kw) -> Reconstruction:
    """One attack on one gradient (``kw`` goes to :func:`~.graphdlg.graphdlg` for
    ``graphdlg-*``)."""
    if n < 2:
        raise ValueError(f"a graph needs at least 2 nodes, got n={n}")
    if n > p.n_max:
        raise ValueError(f"n={n} exceeds the largest graph the decoders cover ({p.n_max})")
    m = method(name)
    if name.startswith("graphdlg-"):
        kind, _, count = name[len("graphdlg-"):].partition("@")
        return graphdlg(p.model, grads, n, p.decoder(kind, int(count) if count else None), iters=p.sz["iters"],
                        seed=seed, **kw)
    if kw:
        raise TypeError(f"{name} takes no options, got {', '.join(kw)}")
    return m.run(p, grads, n, seed)


# --- no gradient ---------------------------------------------------------------------------

@_register("random-guess", "no gradient", "none", "random guess (uniform scores)")
def _random_guess(p: Problem, grads, n: int, seed: int) -> Reconstruction:
    gen = torch.Generator().manual_seed(10_007 * seed + 1)
    s = torch.rand(n, n, generator=gen, dtype=torch.float64).triu(1)
    x = F.one_hot(torch.randint(p.num_features, (n,), generator=gen), p.num_features).double()
    return Reconstruction(s + s.t(), x, int(torch.randint(p.num_classes, (1,), generator=gen)), 0.0, {})


def _prior(kind: str) -> Runner:
    def run(p: Problem, grads, n: int, seed: int) -> Reconstruction:
        s, f = p.decoder(kind, prior=True).decode(_node_count_only(None, None, n), n)
        return Reconstruction(s.double(), f.double(), -1, 0.0, {})
    return run


def _same_size(kind: str) -> Runner:
    def run(p: Problem, grads, n: int, seed: int) -> Reconstruction:
        gen = torch.Generator().manual_seed(10_007 * seed + 2)
        if kind == "client":
            same = [g for g in p.aux("client") if g[0].size(0) == n]
            if same:
                a, x, y = same[int(torch.randint(len(same), (1,), generator=gen))]
                return Reconstruction(a.double(), x.double(), y, 0.0, {"drawn_from": len(same)})
        # random setting, or no client graph of this size: one graph drawn like the random auxiliaries
        (a, x, y), = auxiliary_graphs("random", count=1, sizes=[n], density=p.density, num_features=p.num_features,
                                      num_classes=p.num_classes, seed=10_007 * seed + 3)
        return Reconstruction(a.double(), x.double(), y, 0.0, {"drawn_from": 0})
    return run


# --- gradient ------------------------------------------------------------------------------

@_register("dlg", "gradient", "none", "DLG")
def _dlg(p: Problem, grads, n: int, seed: int) -> Reconstruction:
    return dlg(p.model, grads, n, iters=p.sz["iters"], seed=seed, restarts=p.sz.get("restarts", 1))


@_register("idlg", "gradient", "none", "iDLG")
def _idlg(p: Problem, grads, n: int, seed: int) -> Reconstruction:
    return idlg(p.model, grads, n, iters=p.sz["iters"], seed=seed, restarts=p.sz.get("restarts", 1))


def _idlg_prior(kind: str) -> Runner:
    def run(p: Problem, grads, n: int, seed: int) -> Reconstruction:
        start = _prior(kind)(p, grads, n, seed)
        return idlg(p.model, grads, n, iters=p.sz["iters"], seed=seed, restarts=p.sz.get("restarts", 1), start=start)
    return run


def _nearest(kind: str) -> Runner:
    def run(p: Problem, grads, n: int, seed: int) -> Reconstruction:
        import time

        t0 = time.perf_counter()
        grads = check_gradients(p.model, grads)
        label = recover_label(p.model, grads)
        bank = [(a, x) for a, x, _ in p.aux(kind)]
        found = retrieve(p.model, grads, bank, n, label, k=1)
        if not found:  # no auxiliary graph of this size: fall back to the no-gradient draw
            r = _same_size(kind)(p, grads, n, seed)
            r.info["fallback"] = True
            return r
        a, x, d = found[0]
        return Reconstruction(a.double(), x.double(), label, time.perf_counter() - t0, {"distance": d})
    return run


# --- the per-setting methods, registered in the order of the families ---------------------

for _family, _name, _label, _make in (
    ("no gradient", "prior-only", "prior only ({k} auxiliaries; sees n, not the gradient)", _prior),
    ("no gradient", "random-same-size", "a random {kind_graph} graph of n nodes", _same_size),
    ("gradient", "idlg+prior", "iDLG, also started from the prior ({k} auxiliaries)", _idlg_prior),
    ("gradient", "nearest-auxiliary", "nearest {k} auxiliary graph by gradient distance (retrieval alone)", _nearest),
    ("ours", "graphdlg", "GraphDLG, {k} auxiliaries",
     lambda k: lambda p, grads, n, seed: run_method(p, f"graphdlg-{k}", grads, n, seed=seed)),
):
    for _kind in ("random", "client"):
        _register(f"{_name}-{_kind}", _family, _kind, _label.format(
            k=_kind, kind_graph="client-side" if _kind == "client" else "Erdős–Rényi"))(_make(_kind))


@_register("twin-random", "ours", "random", "twin attack: atoms learned from random auxiliaries, a gradient twin")
def _twin_random(p: Problem, grads, n: int, seed: int) -> Reconstruction:
    return twin_attack(p.model, grads, n, p.composition("random"), steps=p.sz["twin_steps"], seed=seed)
