"""Profiles, environment variables, device choice and seeding.

This is the only module of :mod:`graphtrust` that reads the environment. Everything
that depends on where and how the book runs asks this module:

``GRAPHTRUST_PROFILE``
    ``quick`` (CPU, minutes; what CI and a laptop run) or ``full`` (the papers'
    datasets, budgets and repetitions; meant for a GPU). Unset: ``full`` when CUDA
    is available, ``quick`` otherwise.
``GRAPHTRUST_MIRROR``
    A directory laid out like the upstream URLs without their scheme: the file of
    ``https://X`` lives at ``$GRAPHTRUST_MIRROR/X``. Read instead of downloading.
``GRAPHTRUST_CACHE``
    Writable root for processed datasets and saved results. Default:
    ``$XDG_CACHE_HOME/graphtrust`` or ``~/.cache/graphtrust``.
``GRAPHTRUST_DEVICE``
    Force a torch device (``cpu``, ``cuda``, ``cuda:1``). Unset: CUDA when available.

``GRAPHTRUST_THREAD_POLICY``
    ``adaptive`` (default), ``passive`` or ``torch``. See :func:`_apply_thread_policy`.
``GRAPHTRUST_BUILD_RECORD``
    Set by :mod:`graphtrust.book` for the kernels it starts: the build's record file.

Chapters never branch on the profile themselves: they call :func:`sizes` with their
chapter key and read the numbers it returns, so both profiles run the same code.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

THREAD_POLICIES = ("adaptive", "passive", "torch")


def _apply_thread_policy() -> dict[str, Any]:
    """Choose how torch's CPU threads behave under CPU contention (``GRAPHTRUST_THREAD_POLICY``).

    torch's CPU kernels run in many short OpenMP parallel regions, each ending in a barrier
    that waits for the slowest thread. On a machine where another program is busy (a
    student's laptop with a browser open, a second notebook) one of torch's threads shares
    a core, is descheduled for whole time slices, and every region waits for it. Measured
    on 2 cores beside one busy process, the chapters' inner loops ran 2.6-3.8x slower than
    alone with torch's defaults (a fair share is 2x).

    ``adaptive`` (default)
        The thread count follows the machine's load: :func:`graphtrust.threads.adapt`, at
        the boundaries of the library's loops, uses the cores other processes leave free.
        Beside one busy process the loops then ran 1.1-1.8x slower than the fastest time
        alone, and at full speed on an idle machine.
    ``passive``
        ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once instead of spinning), set
        here before torch loads, with a fixed thread count. It helps less under
        contention and costs 20-45 % on an idle machine in exact Meta-Self (thread
        wake-ups in every region); kept as the measured alternative.
    ``torch``
        torch's and OpenMP's defaults.

    The wait policy is read once, when torch's shared library loads, so ``passive`` only
    has effect when graphtrust is imported before torch; an ``OMP_WAIT_POLICY`` the user
    set is kept.
    """
    raw = os.environ.get("GRAPHTRUST_THREAD_POLICY", "").strip().lower() or "adaptive"
    if raw not in THREAD_POLICIES:
        raise ConfigError(
            f"GRAPHTRUST_THREAD_POLICY={raw!r} is not a thread policy; use one of {', '.join(THREAD_POLICIES)}"
        )
    user = os.environ.get("OMP_WAIT_POLICY", "").strip()
    # a process started by graphtrust (a benchmark's worker) inherits the variable
    inherited = bool(user) and os.environ.get("GRAPHTRUST_SET_OMP_WAIT_POLICY") == user
    ours = False
    if raw == "adaptive":
        state = "adaptive: thread count follows the machine's load"
    elif raw == "torch":
        state = "torch's defaults (GRAPHTRUST_THREAD_POLICY=torch)"
    elif user and not inherited:
        state = f"passive requested, but OMP_WAIT_POLICY={user} was set by the user"
    elif user:
        state, ours = f"passive: OMP_WAIT_POLICY={user}", True
    elif "torch" in sys.modules:
        state = "passive requested, but torch was imported before graphtrust: OpenMP defaults"
    else:
        os.environ["OMP_WAIT_POLICY"] = os.environ["GRAPHTRUST_SET_OMP_WAIT_POLICY"] = "PASSIVE"
        state, ours = "passive: OMP_WAIT_POLICY=PASSIVE", True
    return {"policy": raw, "state": state, "ours": ours}


class ConfigError(ValueError):
    """An environment variable holds a value the library cannot use."""


_THREADS = _apply_thread_policy()

import numpy as np  # noqa: E402  (after the thread policy: torch loads the OpenMP runtime)
import torch  # noqa: E402

PROFILES = ("quick", "full")
REPOSITORY = "graphtrust/graphtrust"  # GitHub org/name, used for Colab links and installs
BRANCH = "main"


# --------------------------------------------------------------------------- profile


def profile_name() -> str:
    """The active profile: ``"quick"`` or ``"full"``.

    Raises :class:`ConfigError` for any other value of ``GRAPHTRUST_PROFILE``.
    """
    raw = os.environ.get("GRAPHTRUST_PROFILE", "").strip()
    if not raw:
        return "full" if torch.cuda.is_available() else "quick"
    name = raw.lower()
    if name not in PROFILES:
        raise ConfigError(
            f"GRAPHTRUST_PROFILE={raw!r} is not a profile; use one of {', '.join(PROFILES)} "
            "(or leave it unset: 'full' with a CUDA GPU, 'quick' without)."
        )
    return name


def _profile_source() -> str:
    if os.environ.get("GRAPHTRUST_PROFILE", "").strip():
        return "set by GRAPHTRUST_PROFILE"
    return "default: CUDA available" if torch.cuda.is_available() else "default: no CUDA GPU"


class Sizes(Mapping):
    """Read-only sizes of one chapter in the active profile; keys are also attributes."""

    def __init__(self, chapter: str, profile: str, values: Mapping[str, Any]):
        self._chapter = chapter
        self._profile = profile
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(
                f"chapter {self._chapter!r} has no size {key!r} (has: {', '.join(self._values)})"
            ) from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def profile(self) -> str:
        return self._profile

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Sizes[{self._chapter}/{self._profile}]({body})"


# Every chapter's sizes, both profiles side by side. Only sizes differ between profiles;
# the code path is the same. ``runtime`` is the measured wall time of the whole chapter
# (see book/status for the machine), shown in each chapter's first output.
_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # The book build (python -m graphtrust.book): a cell that runs longer than this fails
    # its chapter (no quick-profile cell needs more than a few minutes on 2 busy cores).
    "book": {
        "quick": dict(cell_timeout=900, runtime="about 33 minutes on 2 idle CPU cores (see the status page)"),
        "full": dict(cell_timeout=6 * 3600, runtime="hours on a CPU; meant for a GPU"),
    },
    "foundations": {
        "quick": dict(
            datasets=("cora_ml", "cora"),
            seeds=(0, 1, 2),
            epochs=200,
            patience=50,
            runtime="about 1 minute on 2 CPU cores",
        ),
        "full": dict(
            datasets=("cora_ml", "cora"),
            seeds=tuple(range(10)),
            epochs=500,
            patience=100,
            runtime="about 3 minutes on 2 CPU cores, under a minute on a GPU",
        ),
    },
    "metattack": {
        "quick": dict(
            datasets=("cora_ml",),
            budgets=(0.0, 0.025, 0.05, 0.075),
            main_budget=0.05,
            attacks=("dice", "first-order", "a-meta-self", "meta-self", "meta-train"),
            sweep_attacks=("dice", "meta-self"),
            transfer_attack="meta-self",
            steps=30,
            victims=("gcn",),
            victim_seeds=(0, 1, 2),
            sweep_seeds=(0, 1),
            deepwalk_seeds=0,
            deepwalk_epochs=10,
            split_seed=0,
            attack_seed=0,
            # the gap attribution (structure.cells, experiment metattack_gaps); not run by the chapter
            gaps=dict(datasets=("cora_ml",), modes=("paper", "strong"), labels=("self", "true"), splits=(0,),
                      attack_seeds=(0,)),
            # Meta-Self graphs reused by the defences chapter (structure.cells, experiment metattack_graphs)
            graphs=dict(datasets=("cora_ml",), splits=(0,), attack_seeds=(0,), budget=0.25, mode="paper"),
            runtime="about 7 minutes on 2 CPU cores (388 s under nbmake beside one busy process, 2026-12-05)",
        ),
        "full": dict(
            datasets=("cora_ml", "citeseer_npz", "polblogs"),
            budgets=(0.0, 0.05, 0.10, 0.15, 0.20, 0.25),
            main_budget=0.05,
            attacks=("dice", "first-order", "a-meta-self", "meta-self", "meta-train"),
            sweep_attacks=("dice", "first-order", "meta-self"),
            transfer_attack="meta-self",
            steps=100,
            victims=("gcn", "deepwalk"),
            victim_seeds=tuple(range(10)),
            sweep_seeds=tuple(range(5)),
            deepwalk_seeds=5,
            deepwalk_epochs=10,
            split_seed=0,
            attack_seed=0,
            gaps=dict(datasets=("cora_ml", "cora_npz", "citeseer_npz"), modes=("ours", "paper", "strong"),
                      labels=("self", "true"), splits=(0, 1, 2), attack_seeds=(0, 1, 2)),
            graphs=dict(datasets=("cora_ml", "citeseer_npz"), splits=(0, 1, 2, 3, 4), attack_seeds=(0,), budget=0.25,
                        mode="paper"),
            runtime="about 1 hour on 2 CPU cores; minutes on a GPU",
        ),
    },
    "defences": {
        "quick": dict(
            datasets=("cora_ml",),
            splits=(0,),
            defences=("gcn", "jaccard", "gnnguard", "rgcn"),
            budgets=(0.0, 0.05, 0.10),
            model_seeds=(0,),
            epochs=300,
            patience=50,
            # PR-BCD (torch_geometric.contrib): epochs, of which the first `resample` redraw the block
            prbcd=dict(epochs=30, resample=24, block_size=100_000),
            # Meta-PGD (adaptive poisoning through training, defences.meta): the defences and budgets
            # it runs on, Adam steps unrolled, PR-BCD steps, candidate block, final samples
            meta=dict(defences=("gcn", "jaccard"), budgets=(0.10,), steps=20, epochs=10, resample=7,
                      block_size=20_000, final_samples=5),
            runtime=("about 6 minutes on 2 idle CPU cores (354 s in CI beside the other worker, with the "
                     "Meta-PGD cells, 2026-12-05); 11 minutes beside two busy processes"),
        ),
        "full": dict(
            datasets=("cora_ml", "citeseer_npz"),
            splits=(0, 1, 2, 3, 4),
            defences=("gcn", "jaccard", "svd", "gnnguard", "rgcn", "soft-median-gdc", "adversarial"),
            budgets=(0.0, 0.05, 0.10, 0.15, 0.20, 0.25),
            model_seeds=(0,),
            epochs=300,
            patience=50,
            prbcd=dict(epochs=125, resample=100, block_size=100_000),
            # GNNGuard gives no gradient to a pair below its cosine cut (4.5 % of Cora-ML's pairs pass it), so a
            # 20,000-pair block holds about 900 movable pairs against 1,995 flips at 25 %: it gets 100,000 (on four
            # Cora-ML splits the mean moved by 1 point, per split by -11 to +12: ch05). Ten times the cost while the
            # pruned pairs were propagated at weight 0; since GNNGuard drops them, about 300 s of CPU per
            # Citeseer cell at 25 %
            meta=dict(defences=("gcn", "jaccard", "gnnguard", "rgcn"), budgets=(0.05, 0.10, 0.15, 0.20, 0.25),
                      steps=50, epochs=30, resample=24, block_size=20_000, final_samples=5,
                      block_size_by_defence={"gnnguard": 100_000}),
            runtime="hours on 2 CPU cores; minutes on a GPU",
        ),
    },
    "label_poisoning": {
        "quick": dict(
            datasets=("cora_ml",),
            pool_size={"cora_ml": 140, "citeseer_npz": 120},
            budgets=(0.1, 0.2),
            main_budget=0.2,
            attacks=("random", "degree", "lafak", "sgc", "sgc-bin", "ntk-bin", "meta-bin", "sgc-bin:pseudo"),
            victims=("gcn",),
            sweep_victims=("gcn",),
            splits=(0, 1),
            pitfall_attacks=("lafak",),
            pitfall_splits=(0, 1, 2, 3),
            pitfall_large_pool=None,  # the paper's pool size and defender: full profile only
            tuned=None,
            pitfall_tuned_attacks=(),
            pitfall_tuned_splits=(),
            validation=500,
            folds=2,
            grid=({"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5}, {"lr": 0.01, "weight_decay": 5e-3, "dropout": 0.5}),
            epochs=150,
            patience=20,
            runtime="about 5 minutes on 2 CPU cores",
        ),
        "full": dict(
            datasets=("cora_ml", "citeseer_npz"),
            pool_size={"cora_ml": 140, "citeseer_npz": 120},
            budgets=(0.05, 0.1, 0.15, 0.2, 0.3),
            main_budget=0.2,
            attacks=("random", "random-bin", "degree", "degree-bin", "lp", "mg", "lafak",
                     "sgc", "sgc-bin", "ntk", "ntk-bin", "meta", "meta-bin", "sgc-bin:pseudo"),
            victims=("gcn", "gat", "appnp", "mlp"),
            sweep_victims=("gcn", "mlp"),
            splits=tuple(range(10)),
            pitfall_attacks=("random", "lafak", "lafak-topb", "sgc-bin"),
            pitfall_splits=tuple(range(10)),
            pitfall_large_pool={"cora_ml": 280, "citeseer_npz": 240},
            # the paper's defender (Optuna TPE, 5 folds, <= 1000 epochs): 2-4 min per cell on one busy core of this 2-core CPU
            tuned=dict(folds=5, trials=20, epochs=1000, window=100),
            pitfall_tuned_attacks=("clean", "lafak", "sgc-bin"),
            pitfall_tuned_splits=tuple(range(10)),
            validation=500,
            folds=2,
            grid=tuple({"lr": lr, "weight_decay": wd, "dropout": 0.5}
                       for lr in (0.01, 0.05) for wd in (5e-3, 5e-4)),
            epochs=300,
            patience=50,
            runtime="many hours on a CPU (GCN on Cora-ML, ten pools: about 2 h on one core); meant for a GPU",
        ),
    },
    "graphdlg": {
        "quick": dict(
            datasets=("MUTAG",),
            methods=("dlg", "idlg", "nearest-auxiliary-client", "graphdlg-random", "graphdlg-client"),  # pictured
            # the harness main table (leakage.cells, experiment graphdlg_main)
            main_methods=("random-guess", "prior-only-random", "random-same-size-random", "prior-only-client",
                          "random-same-size-client", "dlg", "idlg", "idlg+prior-random", "idlg+prior-client",
                          "nearest-auxiliary-random", "nearest-auxiliary-client", "graphdlg-random",
                          "twin-random", "graphdlg-client"),
            # graphdlg_size: attackers with auxiliaries, told nothing about n (the full profile has all eight)
            size_methods=("graphdlg-random", "prior-only-client", "random-same-size-client",
                          "nearest-auxiliary-client", "graphdlg-client"),
            model_seeds=(0,),
            # graphdlg_rounds: the attack at later FedSGD rounds (leakage.cells; saved-run section of the chapter)
            rounds=dict(datasets=("MUTAG",), model_seeds=(0,), rounds=(0, 1000), lr=0.003,
                        methods=("prior-only-client", "random-same-size-client", "nearest-auxiliary-client", "idlg",
                                 "graphdlg-client")),
            restarts=2,
            n_max=28,
            victims=24,
            hidden=64,
            layers=2,
            iters=60,
            client_aux=150,
            random_aux=600,
            decoder_epochs=60,
            decoder_hidden=256,
            pictures=4,
            ablation_dataset="MUTAG",
            ablation_victims=12,
            twin_victims=8,  # leakage.twins: victims searched for gradient twins (under 1 s each)
            twin_steps=4000,
            aux_counts=(10, 40, 150),
            batch_sizes=(1, 2, 4),
            architectures=((32, 2), (64, 1), (64, 3)),
            clip=1.0,
            noise_grid=(0.0, 0.01, 0.1, 1.0),
            prune_grid=(0.0, 0.5, 0.9, 0.99),
            defence_epochs=6,
            defence_seeds=1,
            runtime="about 4 minutes on 2 CPU cores",
        ),
        "full": dict(
            datasets=("MUTAG", "ENZYMES", "PROTEINS", "AIDS", "Mutagenicity"),
            methods=("dlg", "idlg", "nearest-auxiliary-client", "graphdlg-random", "graphdlg-client"),  # pictured
            main_methods=("random-guess", "prior-only-random", "random-same-size-random", "prior-only-client",
                          "random-same-size-client", "dlg", "idlg", "idlg+prior-random", "idlg+prior-client",
                          "nearest-auxiliary-random", "nearest-auxiliary-client", "graphdlg-random",
                          "twin-random", "graphdlg-client"),
            size_methods=("prior-only-random", "random-same-size-random", "nearest-auxiliary-random",
                          "graphdlg-random", "prior-only-client", "random-same-size-client",
                          "nearest-auxiliary-client", "graphdlg-client"),
            model_seeds=(0, 1, 2),
            rounds=dict(datasets=("MUTAG",), model_seeds=(0, 1, 2), rounds=(0, 100, 1000, 3000), lr=0.003,
                        methods=("prior-only-client", "random-same-size-client", "nearest-auxiliary-client", "idlg",
                                 "graphdlg-client")),
            restarts=5,
            n_max=40,
            victims=60,
            hidden=64,
            layers=2,
            iters=300,
            client_aux=1000,
            random_aux=1500,
            decoder_epochs=100,
            decoder_hidden=512,
            pictures=6,
            ablation_dataset="MUTAG",
            ablation_victims=50,
            twin_victims=20,
            twin_steps=4000,
            aux_counts=(10, 40, 128),
            batch_sizes=(1, 2, 4, 8),
            architectures=((32, 2), (128, 2), (64, 1), (64, 3)),
            clip=1.0,
            noise_grid=(0.0, 0.001, 0.01, 0.1, 1.0),
            prune_grid=(0.0, 0.5, 0.9, 0.99, 0.999),
            defence_epochs=10,
            defence_seeds=3,
            runtime="about 1-2 hours on 2 CPU cores; GraphDLG itself is light, the DLG baselines dominate",
        ),
    },
    "scalegun": {
        "quick": dict(
            datasets=("cora", "citeseer"),
            kinds=("edge", "node", "feature"),
            methods=("scalegun", "cgu", "retrain"),
            requests=4,
            batch={"edge": 10, "node": 5, "feature": 5},
            r_max_rel=1e-7,
            lam=1e-2,
            alpha=0.1,
            eps=1.0,
            delta=1e-4,
            bound_requests=12,
            rmax_grid=(1e-9, 1e-7, 1e-5, 1e-3, 1e-1),
            efficacy_nodes=20,
            synthetic={"sbm-20k": dict(num_nodes=20_000, num_classes=10, avg_degree=14.0, num_features=64,
                                       degree_exponent=2.5, max_degree=2_000, homophily=0.7, feature_signal=0.5)},
            cost_batch=100,
            # ScaleGUN with laziness that shows: absolute r_max × α, edge requests (tables.lazy_frame)
            lazy=dict(datasets=("cora",), alphas=(0.1, 1.0), r_max=(1.5e-4,), methods=("scalegun", "retrain"),
                      requests=10, batch=10),
            # the same at scale: 100-edge batches on the synthetic graph; retraining does not
            # depend on r_max, so its cells have none (tables.lazy_frame(part="lazy_scale"))
            lazy_scale=dict(datasets=("sbm-20k",), alphas=(0.1, 1.0, 10.0), r_max=(1e-5, 1e-4),
                            methods=("scalegun", "retrain"), requests=4, batch=100),
            runtime="about 4 minutes on 2 CPU cores",
        ),
        "full": dict(
            datasets=("cora", "citeseer"),
            kinds=("edge", "node", "feature"),
            methods=("scalegun", "cgu", "retrain"),
            requests=25,
            batch={"edge": 20, "node": 10, "feature": 10},
            r_max_rel=1e-7,
            lam=1e-2,
            alpha=0.1,
            eps=1.0,
            delta=1e-4,
            bound_requests=100,
            rmax_grid=(1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
            efficacy_nodes=100,
            synthetic={"arxiv-sized": dict(num_nodes=169_343, num_classes=40, avg_degree=13.77, num_features=128,
                                           degree_exponent=2.5, max_degree=13_000, homophily=0.7,
                                           feature_signal=0.5)},
            cost_batch=100,
            lazy=dict(datasets=("cora", "citeseer"), alphas=(0.1, 0.3, 1.0), r_max=(1.5e-4, 3.8e-4),
                      methods=("scalegun", "retrain"), requests=25, batch=20),
            lazy_scale=dict(datasets=("arxiv-sized",), alphas=(0.1, 1.0, 3.0, 10.0), r_max=(1e-6, 1e-5, 1e-4),
                            methods=("scalegun", "retrain"), requests=5, batch=100),
            runtime="about 30 minutes on 2 CPU cores, and 25 more for the laziness sweep at arxiv size (one thread, 2026-12-05)",
        ),
    },
}


def register_sizes(chapter: str, *, quick: Mapping[str, Any], full: Mapping[str, Any]) -> None:
    """Add a chapter's sizes (used by tests and by chapters under development)."""
    if set(quick) != set(full):
        raise ConfigError(
            f"sizes of {chapter!r} must name the same keys in both profiles: "
            f"quick-only {sorted(set(quick) - set(full))}, full-only {sorted(set(full) - set(quick))}"
        )
    _SIZES[chapter] = {"quick": dict(quick), "full": dict(full)}


def sizes(chapter: str, profile: str | None = None) -> Sizes:
    """The sizes of ``chapter`` in ``profile`` (default: the active profile)."""
    if chapter not in _SIZES:
        raise KeyError(f"unknown chapter {chapter!r}; known: {', '.join(sorted(_SIZES))}")
    prof = profile_name() if profile is None else profile
    if prof not in PROFILES:
        raise ConfigError(f"unknown profile {prof!r}; use one of {', '.join(PROFILES)}")
    return Sizes(chapter, prof, _SIZES[chapter][prof])


# --------------------------------------------------------------------------- paths


def mirror_dir() -> Path | None:
    """The data mirror from ``GRAPHTRUST_MIRROR``, or ``None`` when unset.

    Raises :class:`ConfigError` when the variable names something that is not a directory.
    """
    raw = os.environ.get("GRAPHTRUST_MIRROR", "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(
            f"GRAPHTRUST_MIRROR={raw!r} does not exist or is not a directory "
            f"(resolved to {path}). Point it at a folder laid out like the download URLs "
            "without their scheme (e.g. ../shared/data), or unset it to download."
        )
    return path


def cache_dir() -> Path:
    """Writable root for processed data (``GRAPHTRUST_CACHE`` or a per-user default)."""
    raw = os.environ.get("GRAPHTRUST_CACHE", "").strip()
    if raw:
        path = Path(raw).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "graphtrust"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_record_path() -> Path | None:
    """The record of the book build this process runs in (``GRAPHTRUST_BUILD_RECORD``), if any."""
    raw = os.environ.get("GRAPHTRUST_BUILD_RECORD", "").strip()
    return Path(raw) if raw else None


def static_build() -> bool:
    """True while the book is being executed for its static pages (``python -m
    graphtrust.book`` sets ``GRAPHTRUST_BUILD_RECORD`` in its kernels; ``GRAPHTRUST_STATIC=1``
    forces it): explorers then also render their starting selection outside the widget."""
    return bool(os.environ.get("GRAPHTRUST_BUILD_RECORD")) or os.environ.get("GRAPHTRUST_STATIC", "") == "1"


def progress_disabled() -> bool:
    """True when ``TQDM_DISABLE`` asks for no progress bars (read at call time)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------- device, seeds


def device() -> torch.device:
    """The torch device to use: ``GRAPHTRUST_DEVICE`` if set, else CUDA when available, else CPU."""
    raw = os.environ.get("GRAPHTRUST_DEVICE", "").strip()
    if raw:
        try:
            dev = torch.device(raw)
        except RuntimeError as err:
            raise ConfigError(f"GRAPHTRUST_DEVICE={raw!r} is not a torch device: {err}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"GRAPHTRUST_DEVICE={raw!r} but CUDA is not available here.")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def thread_policy() -> dict[str, Any]:
    """How torch's CPU threads behave in this process: policy, its state, thread count.

    ``state`` says whether the contention-safe wait policy is in force and, when it is not,
    why (the user chose another, or torch was imported before graphtrust).
    """
    return {**_THREADS, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "threads": torch.get_num_threads()}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch generator seeded alike.

    CPU runs are then repeatable. GPU runs of PyG scatter operations are not bit-exact,
    which is why the book reports mean ± std over seeds.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


# --------------------------------------------------------------------------- reporting


def device_description(dev: torch.device | None = None) -> str:
    """Human-readable device, e.g. ``"cpu (2 threads)"`` or ``"cuda:0 (NVIDIA H100)"``."""
    dev = device() if dev is None else dev
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


@dataclass(frozen=True)
class RunInfo:
    """What a chapter states in its first output."""

    chapter: str
    profile: str
    profile_source: str
    device: str
    runtime: str
    threads: str = ""

    def __str__(self) -> str:
        return (
            f"graphtrust · chapter '{self.chapter}'\n"
            f"  profile : {self.profile} ({self.profile_source})\n"
            f"  device  : {self.device}\n"
            + (f"  threads : {self.threads}\n" if self.threads else "")
            + f"  expected run time: {self.runtime}"
        )


def banner(chapter: str) -> RunInfo:
    """Describe the run of ``chapter``: profile, device and expected run time."""
    sz = sizes(chapter)
    return RunInfo(
        chapter=chapter,
        profile=sz.profile,
        profile_source=_profile_source(),
        device=device_description(),
        runtime=str(sz.get("runtime", "not measured yet")),
        threads=_THREADS["state"],
    )


_CODE: dict[str, str | None] = {}


def code_version() -> str | None:
    """The library's code version: the git commit of the checkout it is imported from, with
    ``+dirty`` when tracked files under ``src/`` differ from it; the package version when it
    is not imported from a git checkout (an installed wheel); computed once per process.

    Saved runs carry it, so a cell can be traced to the code that measured it (two runs of
    one cell with different code may differ: a Metattack cell re-run after the scoring code
    changed its float order took another of two near-tied pairs at one flip).
    """
    if "v" not in _CODE:
        import subprocess
        from importlib.metadata import PackageNotFoundError, version

        src = Path(__file__).resolve().parent
        try:
            run = dict(cwd=src, capture_output=True, text=True, timeout=10, check=True)
            commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], **run).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], **run).stdout
            _CODE["v"] = commit + ("+dirty" if dirty.strip() else "")
        except (OSError, subprocess.SubprocessError):
            try:
                _CODE["v"] = "graphtrust " + version("graphtrust")
            except PackageNotFoundError:
                _CODE["v"] = None
    return _CODE["v"]


def machine() -> str:
    """``"Linux x86_64, AMD EPYC, 2 cores"``: OS, architecture, CPU model (from
    ``/proc/cpuinfo`` where it exists), cores, and the GPU when there is one. The CPU model
    matters: float rounding differs between instruction sets, and a discrete attack that
    follows it (Meta-PGD, PR-BCD's sampling) can take another path on another CPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def provenance() -> dict[str, Any]:
    """Where and with what a result was produced: profile, device, versions, machine, code."""
    import torch_geometric

    return {
        "code": code_version(),
        "profile": profile_name(),
        "device": device_description(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "numpy": np.__version__,
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "thread_policy": _THREADS["state"],
    }
