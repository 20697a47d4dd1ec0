"""The ScaleGUN chapter's tables as DataFrames, and its claims against the paper's.

Every function takes ``Result.data`` of :func:`~.experiments.run` (this run or a saved
one) and returns a :class:`pandas.DataFrame`; the chapter shows them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["utility_frame", "cost_frame", "rmax_frame", "lazy_frame", "lazy_certified", "efficacy_frame", "claims"]


def utility_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Per dataset and request kind: test accuracy (%) after the last request for each
    method, ScaleGUN's retrain count and the largest ratio of its model-level residual
    bound to the budget (runs saved before the model-level certificate hold the largest
    class's bound: ``bound level`` says which)."""
    rows = []
    for name, entry in data["datasets"].items():
        for kind, u in entry["utility"].items():
            steps = u["scalegun"]["steps"]
            model_level = all("model_total" in s for s in steps)
            rows.append({"dataset": name, "request": kind, "removed": sum(s["items"] for s in steps),
                         **{f"{m} (%)": 100 * u[m]["steps"][-1]["accuracy"] for m in u},
                         "ScaleGUN retrains": u["scalegun"]["retrains"],
                         "max. bound / budget": max(s.get("model_total", s["total"]) / s["budget"] for s in steps),
                         "bound level": "model" if model_level else "largest class"})
    out = pd.DataFrame(rows).set_index(["dataset", "request"])
    out["|ScaleGUN − retrain| (pts)"] = (out["scalegun (%)"] - out["retrain (%)"]).abs()
    return out


def cost_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Seconds of one batch of edge removals per graph: ScaleGUN's embedding and model
    updates (flushing when needed) against exact re-propagation and retraining, and the
    speed-ups of the embedding update and of the whole request."""
    out = pd.DataFrame(data["cost"]).T
    out.index.name = "graph"
    for col in ("embedding_seconds", "model_seconds", "repropagation_seconds", "retrain_seconds"):
        out[col] = out[col].astype(float)
    out["embedding speed-up"] = out.repropagation_seconds / out.embedding_seconds
    out["request speed-up"] = ((out.repropagation_seconds + out.retrain_seconds)
                               / (out.embedding_seconds + out.model_seconds))
    keep = ["nodes", "edges", "features", "batch", "embedding_seconds", "model_seconds", "flushed",
            "repropagation_seconds", "retrain_seconds", "embedding speed-up", "request speed-up"]
    return out[keep]


def rmax_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """The r_max trade-off: update time, pushes, the largest entry error, the
    approximation term and the budget per relative r_max."""
    out = pd.DataFrame(data["rmax"]).set_index("r_max_rel")
    out["update (ms)"] = 1e3 * out.pop("update_seconds")
    return out[["r_max", "update (ms)", "pushes", "max_error", "approximation", "budget"]]


def efficacy_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """The replay and membership tests per method: deleted nodes (and all nodes)
    predicted as the trigger class, and the member rate of the deleted nodes, before and
    after unlearning."""
    e = data["efficacy"]
    keys = ["deleted_as_trigger_before", "deleted_as_trigger_after", "all_as_trigger_before",
            "all_as_trigger_after", "member_rate_before", "member_rate_after"]
    out = pd.DataFrame({m: {k: e[m][k] for k in keys} for m in ("scalegun", "cgu", "retrain")}).T
    out.index.name = "method"
    return out


def lazy_frame(data: Mapping[str, Any]) -> pd.DataFrame | None:
    """The laziness sweep (absolute r_max × α), one row per dataset × α × r_max × method:
    accuracy before and after the requests, the approximation term (mean, largest), the
    largest model-level bound over the budget, flushes and retrains; ``None`` for runs
    saved before the sweep existed."""
    if "lazy" not in data:
        return None
    out = pd.DataFrame(data["lazy"]).set_index(["dataset", "alpha", "r_max", "method"])
    return out.assign(**{"accuracy_before": 100 * out.accuracy_before, "accuracy_after": 100 * out.accuracy_after})


def lazy_certified(lazy: pd.DataFrame) -> pd.DataFrame:
    """ScaleGUN's rows of :func:`lazy_frame` where laziness was certified: a non-zero
    approximation term, no flush and no retrain over the whole sequence."""
    sg = lazy.xs("scalegun", level="method")
    return sg[(sg.approximation_mean > 0) & (sg.flushes == 0) & (sg.retrains == 0)]


def claims(data: Mapping[str, Any], saved: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The paper's claims against this run (and a saved full run): what the paper says,
    what we measured, a verdict and the measured cause of any gap."""
    u = utility_frame(data)
    rows = []
    gap = float(u["|ScaleGUN − retrain| (pts)"].max())
    r_used = data["settings"]["r_max_rel"]
    rm = rmax_frame(data)
    exact = r_used in rm.index and float(rm.loc[r_used, "approximation"]) == 0.0
    cause = (f"at the utility runs' relative r_max ({r_used:.0e}) the approximation term is zero on Cora: these "
             "runs test the certified Newton step, not lazy propagation" if exact else "")
    lz = lazy_frame(data)
    if lz is not None:
        sg = lz.xs("scalegun", level="method")
        lazy_ok = lazy_certified(lz)
        if len(lazy_ok):
            a = lazy_ok.index.get_level_values("alpha").min()
            low = sg.xs(sg.index.get_level_values("alpha").min(), level="alpha").accuracy_after.mean()
            cause += (f"; laziness certified without a flush needs α ≥ {a:g} (noise {a / data['settings']['alpha']:g}× "
                      "the utility runs'), "
                      f"where accuracy is {lazy_ok.xs(a, level='alpha').accuracy_after.mean():.1f} % against "
                      f"{low:.1f} % at the smallest α (laziness sweep)")
        else:
            cause += "; no setting of the laziness sweep certified a non-zero approximation term without a flush"
    rows.append({"claim": "accuracy comparable to retraining", "paper": "comparable (no table read)",
                 "ours": f"within {gap:.2f} pts of retraining after the last request, every setting",
                 "verdict": ("partly" if exact else "reproduced") if gap <= 1.0 else "not reproduced",
                 "measured cause": cause})
    worst = float(u["max. bound / budget"].max())
    level = "model level" if (u["bound level"] == "model").all() else "per class (run saved before the model-level certificate)"
    rows.append({"claim": "(ε, δ)-certified sequential removal", "paper": "certified, bound kept under budget",
                 "ours": f"every step certified, {level}; largest bound / budget {worst:.2e}",
                 "verdict": "reproduced" if worst <= 1.0 else "partly",
                 "measured cause": "our bound adds the lazy approximation term; the authors' signed residue sum "
                                   "is not a bound"})
    for label, d in (("this run", data), ("full, saved", saved)):
        if d is None:
            continue
        c = cost_frame(d)
        big = c.index[c.nodes.astype(int).argmax()]
        r = c.loc[big]
        verdict = "partly" if r["request speed-up"] > 1 else "not reproduced"
        cause = (f"the certificate's approximation term forced a flush: model update {r.model_seconds:.1f} s"
                 if bool(r.flushed) else "graph far smaller than ogbn-papers100M; CPU")
        rows.append({"claim": f"a request is far cheaper than re-propagation + retraining ({label})",
                     "paper": "20 s vs 1.9 h on ogbn-papers100M (5,000 edges)",
                     "ours": f"{big}: {r.embedding_seconds + r.model_seconds:.2f} s vs "
                             f"{r.repropagation_seconds + r.retrain_seconds:.2f} s "
                             f"(×{r['request speed-up']:.2f}; embeddings ×{r['embedding speed-up']:.0f})",
                     "verdict": verdict, "measured cause": cause})
    e = data["efficacy"]
    ok = all(e[m]["deleted_as_trigger_after"] <= e["retrain"]["deleted_as_trigger_after"] + 1 for m in ("scalegun",))
    rows.append({"claim": "deleted data stop influencing the model (replay test)", "paper": "passes (no table read)",
                 "ours": f"deleted nodes as trigger class: {e['scalegun']['deleted_as_trigger_before']} → "
                         f"{e['scalegun']['deleted_as_trigger_after']} (retrain: "
                         f"{e['retrain']['deleted_as_trigger_after']})",
                 "verdict": "reproduced" if ok else "not reproduced", "measured cause": ""})
    return pd.DataFrame(rows).set_index("claim")
