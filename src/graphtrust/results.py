"""Helpers for results: ``glue`` (numbers into prose), ``mean_std`` and ``t_half_width``
(tables and intervals).

Every chapter's experiments run on the harness (:mod:`graphtrust.experiment`: flat records
with provenance, JSON lines); a table in the book is rendered from records the code
produced (in the same run, or saved by a full-profile run), never from numbers typed into
prose.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mean_std", "t_half_width", "glue"]


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
