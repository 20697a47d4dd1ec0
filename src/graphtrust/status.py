"""What the status page of the book shows: versions, device, and how long each chapter ran."""

from __future__ import annotations

import importlib.metadata as md
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["versions", "execution_table", "build_table", "timing_table"]

PACKAGES = (
    "graphtrust", "torch", "torch_geometric", "numpy", "scipy", "matplotlib", "networkx",
    "tqdm", "pandas", "ipywidgets", "jupyter-book", "jupytext", "myst-nb", "nbmake", "pytest",
)  # fmt: skip


def versions() -> dict[str, str]:
    """Installed versions of the packages the book relies on (``"-"`` when absent)."""
    out = {"python": config.provenance()["python"]}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "-"
    return out


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def execution_table(book_dir: str | Path) -> list[dict[str, object]]:
    """Per-notebook execution record read from the timing metadata of executed ``.ipynb``.

    nbclient (used by nbmake and Jupyter) stamps each executed code cell with start and end
    times; a notebook committed without outputs has none and is reported as not executed.
    Returns rows ``{notebook, executed, cells, seconds, finished}``.
    """
    rows = []
    for path in sorted(Path(book_dir).glob("*.ipynb")):
        nb = json.loads(path.read_text())
        starts, ends, cells = [], [], 0
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            cells += 1
            ex = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
                starts.append(_parse(ex["iopub.execute_input"]))
                ends.append(_parse(ex["shell.execute_reply"]))
        executed = bool(starts)
        rows.append(
            {
                "notebook": path.stem,
                "executed": executed,
                "cells": cells,
                "seconds": round((max(ends) - min(starts)).total_seconds(), 1) if executed else None,
                "finished": max(ends).strftime("%Y-%m-%d %H:%M UTC") if executed else None,
            }
        )
    return rows


def build_table(book_dir: str | Path = ".") -> tuple[pd.DataFrame | None, str]:
    """This build's chapters as a table, and a sentence saying where the figures come from.

    Inside ``python -m graphtrust.book`` the build record says, per chapter, whether it was
    executed in this build or reused from an earlier one (its inputs unchanged), how long
    it ran and its slowest cell. Elsewhere (nbmake in CI writes outputs into the
    notebooks) the notebooks' own execution timestamps are used when they are there.
    """
    import pandas as pd

    from .book import build_record

    rec = build_record()
    if rec is not None:
        rows = []
        for name, c in rec["chapters"].items():
            if name == "status":
                continue
            slow = c.get("slowest_cells") or []
            rows.append({"chapter": name, "in this build": c["status"], "seconds": c.get("seconds"),
                         "executed at": c.get("executed_at"),
                         "slowest cell": f"{slow[0]['seconds']:.0f} s (cell {slow[0]['cell']})" if slow else "-"})
        how = (f"Built by `python -m graphtrust.book` on {rec['machine']}, profile `{rec['environment']['profile']}`, "
               f"{rec['thread_policy']}. *reused* chapters were not executed again: their inputs (notebook, "
               "library, saved results, profile, versions) are unchanged since the time shown.")
        return pd.DataFrame(rows).set_index("chapter"), how
    rows = [r for r in execution_table(book_dir) if r["notebook"] != "status" and r["executed"]]
    if rows:
        df = pd.DataFrame(rows).set_index("notebook")[["cells", "seconds", "finished"]]
        return df, "Read from the execution timestamps the notebook runner stored in the executed notebooks."
    return None, ("This page was executed outside `python -m graphtrust.book` and the chapters carry no "
                  "execution times. Build the book with the README's book command to see them here.")


def timing_table(path: str | Path) -> tuple[pd.DataFrame | None, str]:
    """Per-chapter execution time alone and beside one busy process (``bench contention --book``)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None, (f"Not measured yet on this machine: `python -m graphtrust.bench contention --book --out "
                      f"book/results/{path.name}` executes every chapter alone and beside one busy process "
                      "and saves what this section shows.")
    raw = json.loads(path.read_text())
    rows = []
    for name, rec in raw["book"].items():
        if name == "status":
            continue
        rows.append({"chapter": name, "idle 2 cores (s)": rec.get("alone", {}).get("seconds"),
                     "beside one busy process (s)": rec.get("contended", {}).get("seconds"),
                     "slowdown": rec.get("slowdown")})
    df = pd.DataFrame(rows).set_index("chapter")
    df.loc["whole book"] = [df.iloc[:, 0].sum(), df.iloc[:, 1].sum(),
                            round(df.iloc[:, 1].sum() / df.iloc[:, 0].sum(), 2)]
    how = (f"Measured by `python -m graphtrust.bench contention --book` on {raw['machine']}, "
           f"{raw.get('threads')} threads, {raw.get('created', '')}: every chapter executed in the quick profile, "
           "alone and beside one CPU-bound process." + (f" {raw['note']}" if raw.get("note") else ""))
    return df, how
