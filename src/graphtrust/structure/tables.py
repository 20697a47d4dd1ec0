"""The Metattack chapter's tables, from the records of the ``metattack`` experiment (:mod:`.cells`).

Every function takes the records as a ``DataFrame`` (``experiment.load(path).records`` or
the run a chapter just made) and returns a frame built with ``groupby``/``pivot_table``.
Errors are misclassification rates on the unlabelled nodes, in percent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from ..training import summarize
from .experiments import PAPER

__all__ = ["victims", "main_table", "main_errors", "sweep_frame", "transfer_table", "fit_table", "attack_flips",
           "transfer_means", "provenance_line",
           "ORDER", "order_claims"]


def victims(df: pd.DataFrame) -> pd.DataFrame:
    """The victim records, with ``error`` in percent and the clean graph as budget 0 of every attack."""
    v = df[df["kind"] == "victim"].copy()
    v["error"] = v["error"].astype(float) * 100
    v["budget"] = v["budget"].astype(float)
    return v


def _fmt(s: pd.Series) -> str:
    """``"mean ± sample std"`` of percentages (:meth:`graphtrust.training.Summary.format`)."""
    return summarize(s).format(scale=1.0)


def main_table(runs: Mapping[str, pd.DataFrame], victim: str, budget: float) -> pd.DataFrame:
    """Misclassification (%) at ``budget`` per run × dataset × attack: ours (mean ± sample std
    over victim seeds, and how many) beside the paper's; the GCN's table ends with the
    logistic regression on features alone, which ignores the graph."""
    rows = []
    for r, (label, df) in enumerate(runs.items()):
        every = victims(df)
        v = every[(every.victim == victim) & ((every.attack == "clean") | (every.budget == budget))]
        if victim == "gcn":
            v = pd.concat([v, every[every.victim == "features"].assign(attack="features only (no graph)")])
        order = {a: i for i, a in enumerate(["clean", *df.loc[df.attack != "clean", "attack"].unique(),
                                              "features only (no graph)"])}
        d_order = {d: i for i, d in enumerate(df.dataset.unique())}
        for (name, atk), g in v.groupby(["dataset", "attack"], sort=False):
            rows.append({"run": label, "dataset": name, "attack": atk, "_r": r, "_d": d_order[name], "_o": order[atk], "ours (%)": _fmt(g.error),
                         "seeds": len(g), "paper (%)": PAPER.get((name, victim), {}).get(atk, "")})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).sort_values(["_r", "_d", "_o"], kind="stable").drop(columns=["_r", "_d", "_o"])
    return out.set_index(["run", "dataset", "attack"])


def main_errors(df: pd.DataFrame, dataset: str, budget: float, victim: str = "gcn") -> dict[str, float]:
    """Mean error (%) per attack at ``budget`` (``clean``: the clean graph) on ``dataset``."""
    v = victims(df)
    v = v[(v.dataset == dataset) & (v.victim == victim) & ((v.attack == "clean") | (v.budget == budget))]
    return {str(k): float(x) for k, x in v.groupby("attack")["error"].mean().items()}


def sweep_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mean GCN error (%) per dataset × attack × budget, each attack's curve starting at the
    clean graph (budget 0), with the features-only error beside it (for the dashed line)."""
    v = victims(df)
    gcn = v[v.victim == "gcn"]
    clean = gcn[gcn.attack == "clean"].groupby("dataset")["error"].mean()
    att = gcn[gcn.attack != "clean"].groupby(["dataset", "attack", "budget"], as_index=False)["error"].mean()
    swept = att.groupby(["dataset", "attack"])["budget"].transform("size") >= 2
    att = att[swept]
    start = att[["dataset", "attack"]].drop_duplicates().assign(budget=0.0)
    start["error"] = start.dataset.map(clean)
    out = pd.concat([start, att]).sort_values(["budget"], kind="stable")
    out["_d"] = out.dataset.map({d: i for i, d in enumerate(df.dataset.unique())})
    out = out.sort_values(["_d", "attack"], kind="stable").drop(columns="_d")
    out["features_only"] = out.dataset.map(v[v.victim == "features"].groupby("dataset")["error"].mean())
    return out.reset_index(drop=True)


def transfer_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Accuracy (%) of a GCN trained on the clean or poisoned graph (rows) and evaluated on
    either (columns), mean ± sample std over victim seeds."""
    t = df[(df["kind"] == "transfer") & (df.dataset == dataset)].copy()
    t["accuracy"] = t["accuracy"].astype(float) * 100
    out = t.pivot_table(index="trained_on", columns="evaluated_on", values="accuracy", aggfunc=_fmt)
    return out.rename(columns=lambda c: f"evaluated on the {c} graph").rename_axis("trained on", axis=0)


def transfer_means(df: pd.DataFrame, dataset: str) -> dict[str, float]:
    """Mean accuracy (%) per ``"trained->evaluated"`` pair."""
    t = df[(df["kind"] == "transfer") & (df.dataset == dataset)]
    m = t.groupby(["trained_on", "evaluated_on"])["accuracy"].mean() * 100
    return {f"{a}->{b}": float(x) for (a, b), x in m.items()}


def fit_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per attack with a trained surrogate: inner steps T and the median training loss and
    accuracy of the surrogate at T over the flips."""
    a = df[(df["kind"] == "attack") & (df.dataset == dataset)]
    a = a[a["surrogate_loss"].map(lambda x: isinstance(x, list) and len(x) > 0)]
    med = lambda x: float(pd.Series(x).median())  # noqa: E731
    return pd.DataFrame({"T": a["steps"].astype(int).to_numpy(),
                         "median training loss at T": a["surrogate_loss"].map(med).to_numpy(),
                         "median training accuracy at T": a["surrogate_accuracy"].map(med).to_numpy()},
                        index=pd.Index(a["attack"].to_numpy(), name="attack"))


def attack_flips(df: pd.DataFrame, dataset: str, attack: str, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` (default all) flips ``(k, 2)`` of one attack cell and whether each inserted an edge ``(k,)``."""
    a = df[(df["kind"] == "attack") & (df.dataset == dataset) & (df.attack == attack)]
    if a.empty:
        raise KeyError(f"no {attack!r} attack on {dataset!r} in these records")
    row = a.iloc[0]
    flips = torch.tensor(row["pairs"], dtype=torch.long).reshape(-1, 2)
    inserted = torch.tensor(row["inserted"], dtype=torch.bool)
    return (flips, inserted) if k is None else (flips[:k], inserted[:k])


#: the paper's orderings of the attacks (GCN on Cora-ML at 5 %): (stronger, weaker)
ORDER = (("meta-self", "a-meta-self"), ("a-meta-self", "dice"), ("meta-self", "meta-train"))


def order_claims(runs: Mapping[str, pd.DataFrame], budget: float, dataset: str = "cora_ml") -> pd.DataFrame:
    """The paper's orderings (:data:`ORDER`) per run: the paper's two errors, ours, and our
    difference in points with the half-width of its 95 % t interval over victim seeds
    (paired by seed: the same initialisation on both graphs). *holds*: the interval lies
    above 0; *not resolved*: it contains 0; *reversed*: it lies below 0."""
    from ..results import t_half_width

    rows = []
    for label, df in runs.items():
        v = victims(df)
        v = v[(v.dataset == dataset) & (v.victim == "gcn") & (v.budget == budget)]
        by = v.pivot_table(index="victim_seed", columns="attack", values="error")
        for a, b in ORDER:
            if a not in by or b not in by:
                continue
            d = (by[a] - by[b]).dropna()
            hw = t_half_width(d.to_numpy())
            lo, hi = d.mean() - hw, d.mean() + hw
            verdict = "holds" if lo > 0 else "reversed" if hi < 0 else "not resolved"
            paper = PAPER.get((dataset, "gcn"), {})
            rows.append({"run": label, "claim": f"{a} > {b}",
                         "paper": f"{paper.get(a, '?').split()[0]} > {paper.get(b, '?').split()[0]}",
                         "ours": f"{by[a].mean():.1f} > {by[b].mean():.1f}", "difference": round(float(d.mean()), 2),
                         "±95%": round(float(hw), 2), "seeds": len(d), "verdict": verdict})
    return pd.DataFrame(rows).set_index(["run", "claim"])


def provenance_line(run: Any, label: str) -> str:
    """One line per run file: where and when it was made, its cells, seconds and datasets."""
    provs = list(run.runs.values())
    where = "; ".join(sorted({f"{p.get('device')}, torch {p.get('torch')}" for p in provs}))
    when = ", ".join(sorted({str(p.get("created", "?"))[:10] for p in provs}))
    df = run.records
    conv = any("converted_from" in p for p in provs)
    time_note = (f"{sum(p.get('run_seconds', 0) for p in provs) / 60:.0f} min in all (converted from the "
                 "pre-harness file)") if conv else f"{run.seconds / 60:.0f} min of cell time"
    return (f"{label}: {where}; created {when}; {len(run.cells)} cells, {time_note}; "
            f"datasets: {', '.join(df.dataset.unique())}")
