"""What the status page of the book shows: versions, device, and how long each chapter ran."""

from __future__ import annotations

import importlib.metadata as md
import json
from datetime import datetime
from pathlib import Path

from . import config

__all__ = ["versions", "execution_table"]

PACKAGES = (
    "graphtrust", "torch", "torch_geometric", "numpy", "scipy", "matplotlib", "networkx",
    "tqdm", "ipywidgets", "jupyter-book", "jupytext", "myst-nb", "nbmake", "pytest",
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
