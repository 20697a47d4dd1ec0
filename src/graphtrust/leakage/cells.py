"""The GraphDLG chapter's main table on the experiment harness (:mod:`graphtrust.experiment`).

``graphdlg_main`` measures every registered method (:data:`~.methods.METHODS`: the
no-gradient baselines, the gradient baselines and GraphDLG) cell by cell:

    dataset × model seed × method

A cell attacks every victim of the dataset (the seeded victims/pool split is the same for
all model seeds, so comparisons are paired by victim) with the global model drawn with
``model_seed`` (FedSGD round 0, batch size one), and gives one record per victim: its node
and edge counts, the metrics after the alignment of :mod:`.metrics` (random tie-break),
the structure AUC under the older structure tie-break (``structure_auc_by_structure``, to
measure that bias), whether the label was right, and the seconds of the attack. The
method's family and setting are recorded beside it (:func:`~.methods.available`).

Run the full grid in parts, one thread each, and merge::

    GRAPHTRUST_PROFILE=full OMP_NUM_THREADS=1 python -m graphtrust.experiments graphdlg_main \\
        --out runs/dlg_a.jsonl --only dataset=MUTAG model_seed=0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import config
from ..experiment import Experiment, Grid, register
from .methods import METHODS, Problem, available, method, run_method
from .metrics import align_by_structure, score
from .model import client_gradient

__all__ = ["MAIN", "main_grid", "measure_main", "gains", "mean_ci"]


def main_grid(sz: config.Sizes) -> Grid:
    """Every dataset × model seed × method of the profile."""
    return Grid.product(dataset=sz["datasets"], model_seed=sz["model_seeds"], method=sz["main_methods"])


def _problem(ctx: dict[str, Any], name: str, model_seed: int) -> Problem:
    key = (name, model_seed)
    if ctx.get("problem_key") != key:
        ctx.update(problem_key=key, problem=Problem(name, ctx["sizes"], model_seed=model_seed))
    return ctx["problem"]


def measure_main(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per victim: see the module docstring."""
    p = _problem(ctx, cell["dataset"], cell["model_seed"])
    m = method(cell["method"])
    out = []
    for i, (a, x, y) in enumerate(p.victims):
        grads = client_gradient(p.model, [(a, x, y)])
        r = run_method(p, cell["method"], grads, a.size(0), seed=i)
        s = score(r.adj, r.x, a, x)
        out.append({"victim": i, "nodes": int(a.size(0)), "edges": int(a.sum()) // 2, "family": m.family,
                    "setting": m.setting, **s.as_dict(),
                    "structure_auc_by_structure": score(r.adj, r.x, a, x, aligner=align_by_structure).structure_auc,
                    "label_ok": float(r.label == y) if r.label >= 0 else math.nan, "seconds": round(r.seconds, 4)})
    return out


MAIN = register(Experiment("graphdlg_main", main_grid, measure_main, chapter="graphdlg"))


def mean_ci(v: pd.Series, level: float = 0.95) -> pd.Series:
    """Mean, sample std, count and the half-width of the t confidence interval of the mean."""
    from scipy import stats

    v = v.dropna()
    n = len(v)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return pd.Series({"mean": v.mean(), "std": v.std(ddof=1), "n": n, "ci95": half})


def gains(df: pd.DataFrame, metric: str = "structure_auc", higher: bool = True) -> pd.DataFrame:
    """Per dataset and GraphDLG setting: the ratio of GraphDLG's mean ``metric`` to the
    strongest baseline of each family *available to the same attacker*
    (:func:`~.methods.available`), with a paired 95 % bootstrap interval of that ratio
    (victims × model seeds resampled together). ``df``: records of ``graphdlg_main``."""
    rows = []
    rng = np.random.default_rng(0)
    for name, ours in df.loc[df.family == "ours", ["dataset", "method"]].drop_duplicates().itertuples(index=False):
        setting = METHODS[ours].setting
        wide = df[df.dataset == name].pivot_table(index=["model_seed", "victim"], columns="method", values=metric)
        for family in ("no gradient", "gradient"):
            cands = [c for c in available(setting, family) if c in wide]
            if not cands:
                continue
            means = wide[cands].mean()
            best = means.idxmax() if higher else means.idxmin()
            ratio = wide[ours].mean() / means[best]
            idx = rng.integers(0, len(wide), (2000, len(wide)))
            with np.errstate(divide="ignore", invalid="ignore"):  # a resample can hold only exact recoveries
                boot = wide[ours].to_numpy()[idx].mean(1) / wide[best].to_numpy()[idx].mean(1)
            lo, hi = np.nanquantile(boot, [0.025, 0.975])
            rows.append({"dataset": name, "method": ours, "family": family, "strongest baseline": best,
                         "baseline": means[best], "ours": wide[ours].mean(), "ratio": ratio, "ratio 95% low": lo,
                         "ratio 95% high": hi})
    return pd.DataFrame(rows)
