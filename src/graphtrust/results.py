"""Helpers for results: ``glue`` (numbers into prose), ``mean_std`` and ``t_half_width``
(tables and intervals), and :class:`Result`, the pre-harness container.

Every chapter's experiments run on the harness (:mod:`graphtrust.experiment`: flat records
with provenance, JSON lines); a table in the book is rendered from records the code
produced (in the same run, or saved by a full-profile run), never from numbers typed into
prose. :class:`Result` (one nested JSON document) is kept only to read the label-poisoning
chapter's older full run until its re-run on the harness is complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import config

__all__ = ["Result", "mean_std", "t_half_width", "glue"]


@dataclass
class Result:
    """Named numbers plus where, when and with what they were produced."""

    name: str
    data: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=config.provenance)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    seconds: float | None = None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)
        return path

    def combined_with(self, extra: Result, data: dict[str, Any]) -> Result:
        """A result holding ``data`` (merged by the caller) whose provenance lists both runs.

        ``provenance["runs"]`` keeps each run's machine, versions, creation time and seconds,
        so that a table assembled from runs on different machines says so.
        """
        runs = self.provenance.get("runs", [dict(self.provenance, created=self.created, seconds=self.seconds)])
        prov = dict(self.provenance, runs=[*runs, dict(extra.provenance, created=extra.created, seconds=extra.seconds)])
        return Result(self.name, data, provenance=prov, seconds=(self.seconds or 0) + (extra.seconds or 0))

    @classmethod
    def load(cls, path: str | Path) -> Result:
        raw = json.loads(Path(path).read_text())
        missing = {"name", "data", "provenance"} - set(raw)
        if missing:
            raise ValueError(f"{path} is not a saved Result (missing {', '.join(sorted(missing))})")
        return cls(**raw)


def mean_std(df, index, columns, values: str, *, scale: float = 100.0, digits: int = 1,
             order: dict[str, list] | None = None):
    """A table of ``mean ± std`` strings: ``df[values]`` grouped by ``index`` × ``columns``.

    ``std`` is the sample standard deviation (``ddof=1``) over the records of each group
    (e.g. the random pools); a group of one record shows its value alone. ``scale``
    multiplies both (100: fractions to %). ``order`` fixes the order of index or column
    values (``{"protocol": [...]}``); values not listed are dropped. Returns a
    ``DataFrame`` of strings (rendered as an HTML table in a notebook) with the group
    sizes in ``.attrs["n"]``.
    """
    import pandas as pd

    stats = df.pivot_table(index=index, columns=columns, values=values, aggfunc=["mean", "std", "count"],
                           observed=True)
    mean, n = stats["mean"] * scale, stats["count"]
    # pivot_table drops all-NaN columns: std of groups of one record, possibly all of them
    std = (stats["std"].reindex_like(mean) if "std" in stats.columns.get_level_values(0) else mean * float("nan")) * scale
    out = mean.map(lambda v: f"{v:.{digits}f}") + std.map(lambda v: "" if pd.isna(v) else f" ± {v:.{digits}f}")
    out = out.where(mean.notna(), "")
    for key, vals in (order or {}).items():
        for axis, names in ((0, out.index.names), (1, out.columns.names)):
            if key in names:
                keep = [v for v in vals if v in out.axes[axis].get_level_values(key)]
                out = out.reindex(keep, axis=axis, level=key if len(names) > 1 else None)
    out.attrs["n"] = n
    return out


def t_half_width(values, level: float = 0.95) -> float:
    """Half-width of the t confidence interval of the mean of ``values`` (NaNs dropped):
    ``t_{(1+level)/2, n-1} · s / √n`` with the sample std ``s``; NaN with fewer than two.
    For paired differences pass the differences."""
    import math

    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def glue(name: str, value: Any, display: bool = True) -> None:
    """``myst_nb.glue`` where myst-nb is installed (a book build), a no-op elsewhere.

    A chapter glues measured values into its text. In a bare Colab runtime, which installs
    only PyTorch Geometric and graphtrust, myst-nb is absent and the text's ``{glue}``
    roles are not rendered anyway, so the chapter runs on without it."""
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)
