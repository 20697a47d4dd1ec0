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

``graphdlg_size`` (dataset × model seed × method, for the attackers with auxiliary graphs)
reruns the attacks with the node count each attacker estimates (:mod:`.size`) instead of
the true one; :func:`size_summary` sets them beside the main table's records.

``graphdlg_ablations`` (dataset × model seed × part, on the profile's
``ablation_dataset``) holds the pictures, the ablations (structure, features, auxiliary
count, batch size), the defences (noise, pruning) and the GCN architectures; each part's
records are described by :func:`.experiments.measure_part`.

Run the full grid in parts, one thread each, and merge::

    GRAPHTRUST_PROFILE=full OMP_NUM_THREADS=1 python -m graphtrust.experiments graphdlg_main \\
        --out runs/dlg_a.jsonl --only dataset=MUTAG model_seed=0
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import config
from ..experiment import Experiment, Grid, register
from ..results import t_half_width
from .experiments import PARTS, measure_part
from .methods import METHODS, Problem, available, method, run_method
from .metrics import align_by_structure, score
from .model import accuracy, client_gradient
from .size import NodeCount, estimate_nodes

__all__ = ["MAIN", "SIZE", "ABLATIONS", "ROUNDS", "rounds_grid", "measure_rounds", "rounds_summary", "main_grid", "size_grid", "measure_main", "measure_size", "node_counts", "size_summary", "shared", "summary", "gains", "mean_ci"]


def main_grid(sz: config.Sizes) -> Grid:
    """Every dataset × model seed × method of the profile."""
    return Grid.product(dataset=sz["datasets"], model_seed=sz["model_seeds"], method=sz["main_methods"])


def _problem(ctx: dict[str, Any], name: str, model_seed: int) -> Problem:
    key = (name, model_seed)
    if ctx.get("problem_key") != key:
        ctx.update(problem_key=key, problem=Problem(name, ctx["sizes"], model_seed=model_seed))
    return ctx["problem"]


def shared(p: Problem) -> dict[str, Any]:
    """A harness ``context`` that lets ``graphdlg_main`` reuse ``p`` (and its trained
    decoders) for its dataset and model seed: ``experiment.run(MAIN, context=shared(p))``."""
    return {"problem_key": (p.name, p.model_seed), "problem": p}


def measure_main(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per victim: see the module docstring."""
    return _attack_records(_problem(ctx, cell["dataset"], cell["model_seed"]), cell["method"])


def _attack_records(p: Problem, name: str, allow_failure: bool = False) -> list[dict[str, Any]]:
    m = method(name)
    out = []
    for i, (a, x, y) in enumerate(p.victims):
        grads = client_gradient(p.model, [(a, x, y)])
        try:
            r = run_method(p, name, grads, a.size(0), seed=i)
        except ValueError as err:
            if not allow_failure or "does not leak" not in str(err):
                raise
            out.append({"victim": i, "nodes": int(a.size(0)), "edges": int(a.sum()) // 2, "family": m.family,
                        "setting": m.setting, "failed": 1})
            continue
        s = score(r.adj, r.x, a, x)
        out.append({"victim": i, "nodes": int(a.size(0)), "edges": int(a.sum()) // 2, "family": m.family,
                    "setting": m.setting, **s.as_dict(),
                    "structure_auc_by_structure": score(r.adj, r.x, a, x, aligner=align_by_structure).structure_auc,
                    "label_ok": float(r.label == y) if r.label >= 0 else math.nan, "seconds": round(r.seconds, 4)})
    return out


MAIN = register(Experiment("graphdlg_main", main_grid, measure_main, chapter="graphdlg"))


def rounds_grid(sz: config.Sizes) -> Grid:
    """The profile's ``rounds`` settings: dataset × model seed × FedSGD rounds × method."""
    g = sz["rounds"]
    return Grid.product(dataset=g["datasets"], model_seed=g["model_seeds"], rounds=g["rounds"], method=g["methods"])


def measure_rounds(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """``graphdlg_main``'s records for the global model after ``rounds`` rounds of FedSGD on
    the pool, with that model's accuracy on the (unseen) victims and the median norm of a
    victim's gradient. A victim whose gradient leaks no pooled embedding (every bias
    gradient of the head zero: dead units) is recorded with ``failed = 1`` and no metrics."""
    key = ("rounds", cell["dataset"], cell["model_seed"], cell["rounds"])
    if ctx.get("problem_key") != key:
        p = Problem(cell["dataset"], ctx["sizes"], model_seed=cell["model_seed"], rounds=cell["rounds"],
                    lr=ctx["sizes"]["rounds"]["lr"])
        norms = [float(torch.sqrt(sum((g ** 2).sum() for g in client_gradient(p.model, [v])))) for v in p.victims]
        ctx.update(problem_key=key, problem=p, rounds_info={"victim_accuracy": accuracy(p.model, p.victims),
                                                            "gradient_norm": float(np.median(norms))})
    return [{**r, **ctx["rounds_info"]} for r in _attack_records(ctx["problem"], cell["method"], allow_failure=True)]


ROUNDS = register(Experiment("graphdlg_rounds", rounds_grid, measure_rounds, chapter="graphdlg"))


def rounds_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset × FedSGD rounds: the model's accuracy on the victims and median gradient
    norm, and per method the structure AUC (mean over victims × model seeds, with the
    half-width of its 95 % t interval); ``gain`` is GraphDLG's paired AUC gain over the
    strongest no-gradient baseline of its setting, with its interval, and ``gain change`` its
    paired change from round 0 (same victims and model seeds) with its interval."""
    keys = ["dataset", "rounds"]
    df = df.assign(failed=df["failed"].fillna(0) if "failed" in df else 0)
    info = df.groupby(keys)[["victim_accuracy", "gradient_norm"]].mean().round(3)
    info["failed attacks"] = df.groupby(keys)["failed"].sum().astype(int)
    auc = df.pivot_table(index=keys, columns="method", values="structure_auc", aggfunc="mean")
    ci = df.groupby([*keys, "method"])["structure_auc"].apply(lambda v: mean_ci(v)["ci95"]).unstack("method")
    out = info.join(auc.round(3)).join(ci.round(3).add_prefix("±95% "))
    rows, first = [], {}
    for (name, r), d in df.groupby(keys):
        per = d.pivot_table(index=["model_seed", "victim"], columns="method", values="structure_auc")
        base = [m for m in per if method(m).family == "no gradient" and method(m).setting == "client"]
        if "graphdlg-client" in per and base:
            strongest = per[base].mean().idxmax()
            diff = per["graphdlg-client"] - per[strongest]
            first.setdefault(name, diff)  # the smallest round: the reference
            change = (diff - first[name]).dropna()
            rows.append({"dataset": name, "rounds": r, "strongest no-gradient": strongest,
                         "gain": round(float(diff.mean()), 3), "gain ±95%": round(float(mean_ci(diff)["ci95"]), 3),
                         "gain change": round(float(change.mean()), 3),
                         "gain change ±95%": round(float(mean_ci(change)["ci95"]), 3) if len(change) > 1 else float("nan")})
    return out.join(pd.DataFrame(rows).set_index(keys)) if rows else out


def ablations_grid(sz: config.Sizes) -> Grid:
    """Every part of the ablations on the ablation dataset, with the first model seed."""
    return Grid.product(dataset=(sz["ablation_dataset"],), model_seed=sz["model_seeds"][:1], part=PARTS)


def measure_ablation(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of one part (:func:`.experiments.measure_part`)."""
    return measure_part(_problem(ctx, cell["dataset"], cell["model_seed"]), ctx["sizes"], cell["part"])


ABLATIONS = register(Experiment("graphdlg_ablations", ablations_grid, measure_ablation, chapter="graphdlg"))


def size_grid(sz: config.Sizes) -> Grid:
    """Every dataset × model seed × method of ``size_methods`` (attackers with auxiliaries)."""
    return Grid.product(dataset=sz["datasets"], model_seed=sz["model_seeds"], method=sz["size_methods"])


def node_counts(ctx: dict[str, Any], p: Problem, setting: str) -> list[tuple[NodeCount, float]]:
    """Per victim, the attacker of ``setting`` estimates ``n`` (:func:`~.size.estimate_nodes`
    with its auxiliaries) and the seconds it took; cached per problem.

    Only the client-side attacker also tries its decoder's graphs: the random attacker's
    decoder, trained on Erdős–Rényi graphs, pulls the estimate towards the largest sizes
    (on the quick MUTAG run, a mean error of 9.0 nodes with it, 4.2 without; the size
    prior's median alone errs by 4.0)."""
    key = ("node_counts", p.name, p.model_seed, setting)
    if key not in ctx:
        out = []
        for a, x, y in p.victims:
            t0 = time.perf_counter()
            est = estimate_nodes(p.model, client_gradient(p.model, [(a, x, y)]), p.aux(setting),
                                 decoder=p.decoder(setting) if setting == "client" else None, high=p.n_max)
            out.append((est, time.perf_counter() - t0))
        ctx[key] = out
    return ctx[key]


def measure_size(cell: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per victim: the method run with the node count its attacker estimated
    (``n_hat``, with the bounds and what decided it), scored on ``max(n, n̂)`` nodes."""
    p = _problem(ctx, cell["dataset"], cell["model_seed"])
    m = method(cell["method"])
    if m.setting == "none":
        raise ValueError(f"{m.name}: an attacker without auxiliary graphs has no size prior to estimate n from")
    out = []
    for i, ((a, x, y), (est, secs)) in enumerate(zip(p.victims, node_counts(ctx, p, m.setting))):
        grads = client_gradient(p.model, [(a, x, y)])
        r = run_method(p, cell["method"], grads, est.estimate, seed=i)
        s = score(r.adj, r.x, a, x)
        out.append({"victim": i, "nodes": int(a.size(0)), "n_hat": est.estimate, "n_low": est.low, "n_high": est.high,
                    "n_source": est.source, "family": m.family, "setting": m.setting, **s.as_dict(),
                    "seconds": round(r.seconds, 4), "estimate_seconds": round(secs, 4)})
    return out


SIZE = register(Experiment("graphdlg_size", size_grid, measure_size, chapter="graphdlg"))


def size_summary(main: pd.DataFrame, size: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, setting and method: how often the estimate is exact (and within one
    node), whether ``n`` lies in the bounds, and the structure AUC and edge F1 with ``n``
    given (``graphdlg_main`` records, the same victims and seeds) and estimated."""
    keys = ["dataset", "model_seed", "method", "victim"]
    both = size.merge(main[keys + ["structure_auc", "edge_f1"]], on=keys, suffixes=("", " (n given)"))
    both = both.assign(exact=both.n_hat == both.nodes, within_1=(both.n_hat - both.nodes).abs() <= 1,
                       in_bounds=(both.n_low <= both.nodes) & (both.nodes <= both.n_high),
                       abs_error=(both.n_hat - both.nodes).abs())
    g = both.groupby(["dataset", "setting", "method"], sort=False)
    out = g[["exact", "within_1", "abs_error", "in_bounds", "structure_auc (n given)", "structure_auc",
             "edge_f1 (n given)", "edge_f1"]].mean()
    return out.rename(columns={"exact": "n̂ = n", "within_1": "|n̂ − n| ≤ 1", "abs_error": "mean |n̂ − n|",
                               "in_bounds": "n in bounds", "structure_auc": "AUC (n estimated)",
                               "structure_auc (n given)": "AUC (n given)", "edge_f1 (n given)": "edge F1 (n given)",
                               "edge_f1": "edge F1 (n estimated)"})


def mean_ci(v: pd.Series, level: float = 0.95) -> pd.Series:
    """Mean, sample std, count and the half-width of the t confidence interval of the mean."""
    v = v.dropna()
    n = len(v)
    half = t_half_width(v, level)
    return pd.Series({"mean": v.mean(), "std": v.std(ddof=1), "n": n, "ci95": half})


def gains(df: pd.DataFrame, metric: str = "structure_auc", higher: bool = True) -> pd.DataFrame:
    """Per dataset and GraphDLG setting: the ratio of GraphDLG's mean ``metric`` to the
    strongest baseline of each family *available to the same attacker*
    (:func:`~.methods.available`), with a paired 95 % bootstrap interval of that ratio
    (victims × model seeds resampled together). ``df``: records of ``graphdlg_main``.
    Victims on which the metric is undefined for either side (AUC of a two-node graph: one
    pair, no negative) are left out of that ratio, its interval and its two means."""
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
            pair = wide[[ours, best]].dropna().to_numpy()
            mo, mb = pair.mean(0)
            idx = rng.integers(0, len(pair), (2000, len(pair)))
            with np.errstate(divide="ignore", invalid="ignore"):  # a resample can hold only exact recoveries
                boot = pair[idx, 0].mean(1) / pair[idx, 1].mean(1)
            lo, hi = np.nanquantile(boot, [0.025, 0.975])
            rows.append({"dataset": name, "method": ours, "family": family, "strongest baseline": best,
                         "baseline": mb, "ours": mo, "ratio": mo / mb, "ratio 95% low": lo, "ratio 95% high": hi})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """The main table from ``graphdlg_main`` records: per dataset, family and method, the
    means over victims × model seeds of structure AUC (with the half-width of its 95 % t
    interval and the AUC under the structure tie-break), edge F1, feature MSE and seconds
    per graph; for runs that record them, the alignment-free degree L1 and atom-type
    (feature-class) TV distance (lower is better, :mod:`.metrics`)."""
    keys = ["dataset", "family", "method"]
    g = df.groupby(keys, sort=False)
    free = [c for c in ("degree_l1", "feature_histogram_tv") if c in df]  # alignment-free (newer runs)
    out = g[["structure_auc", "structure_auc_by_structure", "edge_f1", *free, "feature_mse", "seconds"]].mean()
    out.insert(1, "AUC ±95%", g["structure_auc"].apply(lambda v: mean_ci(v)["ci95"]))
    out.insert(0, "graphs", g["structure_auc"].size())
    return out.rename(columns={"structure_auc": "structure AUC", "structure_auc_by_structure": "AUC, structure tie-break",
                               "edge_f1": "edge F1", "degree_l1": "degree L1", "feature_histogram_tv": "atom-type TV",
                               "feature_mse": "feature MSE", "seconds": "s / graph"})


def claims(df: pd.DataFrame, dataset: str = "MUTAG") -> pd.DataFrame:
    """The paper's headline claims against ``graphdlg_main`` records of ``dataset``: for
    each, the paper's figure, ours against the paper's baselines (the better of DLG and
    iDLG), ours against the strongest no-gradient and gradient baselines the same attacker
    has (with the conservative end of the paired bootstrap interval), a verdict and the
    measured cause. *Reproduced*: the gain exceeds the paper's against DLG/iDLG and, at the
    interval's conservative end, against both strongest baselines; *partly*: against
    DLG/iDLG only."""
    d = df[df.dataset == dataset]
    mean = d.groupby("method")[["structure_auc", "feature_mse"]].mean()
    by_metric = {m: gains(d, m, h).set_index(["method", "family"])
                 for m, h in (("structure_auc", True), ("feature_mse", False))}
    rows = []
    for ours, setting in (("graphdlg-client", "client-side auxiliaries"), ("graphdlg-random", "random auxiliaries"),
                          ("twin-random", "random auxiliaries, twin attack")):
        if ours not in mean.index:
            continue
        for metric, paper, higher in (("structure_auc", 0.2504, True), ("feature_mse", 0.0546, False)):
            value = mean.loc[ours, metric]

            def gain(base: float, value: float = value, higher: bool = higher) -> float:
                return value / base - 1 if higher else 1 - value / base
            dlgs = mean.loc[[m for m in ("dlg", "idlg") if m in mean.index], metric]
            g = by_metric[metric]
            strong = {fam: g.loc[(ours, fam)] for fam in ("no gradient", "gradient") if (ours, fam) in g.index}
            vs = {fam: gain(r["baseline"]) for fam, r in strong.items()}
            # the gain at the conservative end of the paired bootstrap interval of the ratio
            low = {fam: (r["ratio 95% low"] - 1) if higher else (1 - r["ratio 95% high"]) for fam, r in strong.items()}
            vs_dlg = gain(dlgs.max() if higher else dlgs.min())
            ok_dlg, ok_all = vs_dlg > paper, all(v > paper for v in low.values())
            verdict = "reproduced" if ok_dlg and ok_all else "partly" if ok_dlg else "not reproduced"
            weakest = min(low, key=low.get) if low else None
            cause = ("" if ok_all else f"the strongest {weakest} baseline ({strong[weakest]['strongest baseline']}) "
                     f"already reaches {strong[weakest]['baseline']:.3f}")
            rows.append({"claim": f"{'structure AUC' if higher else 'feature MSE'} gain, {setting}",
                         "paper": f"> {paper:+.2%}", "ours vs DLG/iDLG": f"{vs_dlg:+.1%}",
                         **{f"ours vs strongest {fam}": f"{v:+.1%} (95 % low end {low[fam]:+.1%})"
                            for fam, v in vs.items()},
                         "verdict": verdict, "measured cause of the gap": cause})
    return pd.DataFrame(rows).set_index("claim")
