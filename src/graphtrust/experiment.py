"""The experiment harness: a grid of cells, one function that measures a cell, flat records.

An experiment declares the cells a chapter must hold (:class:`Grid`, per profile) and a
function that measures one cell and returns flat records (dicts of numbers and strings).
The harness does the rest, the same way for every chapter:

* **run** the cells that are missing, with a progress bar, and **checkpoint** after each
  one: a run file is JSON lines, appended to (one line per finished cell), so an
  interrupted run loses at most the cell in flight and **resumes** where it stopped;
* **merge** parts run on different machines, refusing two parts that hold the same cell
  with different numbers (the message names the cell), so a shared clean baseline must
  agree;
* report **coverage** against the grid (the missing cells) and whether the run is
  **complete**;
* give the records as one pandas ``DataFrame`` (cell keys + metrics), for
  ``groupby``/``pivot_table`` in the chapters.

Why JSON lines and not parquet: a checkpoint is one appended line (no rewrite of the file,
nothing lost but the cell in flight), the files are text that git diffs and reviewers read,
and no extra dependency (pyarrow) is needed; the records are small (at most a few MB).

File layout: every line is a JSON object; ``{"kind": "run", "run": ID, "provenance": {...}}``
starts each run (or part) and ``{"kind": "cell", "run": ID, "cell": {...}, "seconds": s,
"records": [...]}`` holds one measured cell.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Grid", "Experiment", "Run", "ConflictError", "run", "load", "merge", "cell_key"]

Cell = dict[str, Any]


class ConflictError(ValueError):
    """Two runs hold the same cell with different numbers."""


def cell_key(cell: Mapping[str, Any]) -> str:
    """A canonical text key of a cell (sorted ``name=value`` pairs)."""
    return ", ".join(f"{k}={cell[k]!r}" for k in sorted(cell))


@dataclass(frozen=True)
class Grid:
    """The cells an experiment must hold: a union of Cartesian products of named axes.

    ``Grid.product(dataset=("cora_ml",), budget=(0.05, 0.1))`` has two cells;
    ``g1 | g2`` is the union (cells in both count once). Cells keep the axes' order.
    """

    blocks: tuple[tuple[tuple[str, tuple[Any, ...]], ...], ...] = ()

    @classmethod
    def product(cls, **axes: Iterable[Any]) -> Grid:
        for name, values in axes.items():
            if isinstance(values, str | bytes):
                raise TypeError(f"axis {name!r} must be a sequence of values, got the string {values!r}")
        return cls((tuple((k, tuple(v)) for k, v in axes.items()),))

    def __or__(self, other: Grid) -> Grid:
        return Grid(self.blocks + other.blocks)

    def cells(self) -> list[Cell]:
        out, seen = [], set()
        for block in self.blocks:
            names = [k for k, _ in block]
            for values in itertools.product(*(v for _, v in block)):
                cell = dict(zip(names, values))
                key = cell_key(cell)
                if key not in seen:
                    seen.add(key)
                    out.append(cell)
        return out

    def only(self, **keep: Iterable[Any]) -> Grid:
        """The grid restricted to cells whose named axes take the given values."""
        for name in keep:
            if not any(name == k for block in self.blocks for k, _ in block):
                raise KeyError(f"no axis {name!r} in the grid (axes: {', '.join(self.axes)})")
        blocks = []
        for block in self.blocks:
            new = tuple((k, tuple(x for x in v if k not in keep or x in set(keep[k]))) for k, v in block)
            if all(v for _, v in new):
                blocks.append(new)
        return Grid(tuple(blocks))

    @property
    def axes(self) -> list[str]:
        return list(dict.fromkeys(k for block in self.blocks for k, _ in block))

    def __len__(self) -> int:
        return len(self.cells())


@dataclass
class Experiment:
    """A chapter's experiment: its grid per profile and how to measure one cell.

    ``grid(sizes) -> Grid`` and ``measure(cell, context) -> list[dict] | dict``; ``context``
    is a dict the experiment may use to keep what several cells share (a loaded dataset, a
    trained surrogate) for the length of one run. Records are flat: the harness adds the
    cell's keys to each.
    """

    name: str
    grid: Callable[[config.Sizes], Grid]
    measure: Callable[[Cell, dict[str, Any]], list[dict[str, Any]] | dict[str, Any]]
    chapter: str | None = None  # the sizes key (default: ``name``)

    def sizes(self, profile: str | None = None) -> config.Sizes:
        return config.sizes(self.chapter or self.name, profile)


@dataclass
class Run:
    """The measured cells of one experiment, with the provenance of every run that made them."""

    experiment: str
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_key -> {"cell", "records", ...}
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> provenance

    # ----------------------------------------------------------------- views
    @property
    def records(self) -> pd.DataFrame:
        """One row per record: the cell's keys, the record's fields, the cell's seconds and run id."""
        import pandas as pd

        rows = []
        for entry in self.cells.values():
            for rec in entry["records"]:
                rows.append({**entry["cell"], **rec, "_seconds": entry["seconds"], "_run": entry["run"]})
        return pd.DataFrame(rows)

    def missing(self, grid: Grid) -> list[Cell]:
        """The cells of ``grid`` this run does not hold."""
        return [c for c in grid.cells() if cell_key(c) not in self.cells]

    def complete(self, grid: Grid) -> bool:
        return not self.missing(grid)

    def coverage(self, grid: Grid) -> dict[str, Any]:
        cells = grid.cells()
        missing = self.missing(grid)
        return {"cells": len(cells), "measured": len(cells) - len(missing), "missing": missing,
                "complete": not missing, "extra": len(self.cells) - (len(cells) - len(missing))}

    @property
    def seconds(self) -> float:
        return float(sum(e["seconds"] for e in self.cells.values()))

    # ----------------------------------------------------------------- combining
    def add(self, entry: dict[str, Any], source: str = "") -> None:
        """Add one measured cell; an existing cell must hold the same records."""
        key = cell_key(entry["cell"])
        old = self.cells.get(key)
        if old is not None:
            if not _same(old["records"], entry["records"]):
                raise ConflictError(
                    f"{self.experiment}: cell ({key}) is in two runs with different numbers "
                    f"(run {old['run']} and run {entry['run']}{' in ' + source if source else ''}): "
                    f"{_first_difference(old['records'], entry['records'])}. Re-run that cell in one place "
                    "or keep only one of the parts.")
            return
        self.cells[key] = entry

    def drop(self, **where: Iterable[Any]) -> int:
        """Take out the cells whose every named axis has one of the given values (as
        :meth:`Grid.only` selects), and the run headers no remaining cell refers to; returns
        how many cells went. For cells measured by code since fixed: drop, then run again."""
        if not where:
            raise ValueError("drop needs at least one KEY=VALUES; to start over, use a new file")
        gone = [k for k, e in self.cells.items()
                if all(key in e["cell"] and any(_close(e["cell"][key], v) for v in vals) for key, vals in where.items())]
        for k in gone:
            del self.cells[k]
        self._prune_runs()
        return len(gone)

    def _prune_runs(self) -> None:
        """Drop the run headers (provenance) that no cell refers to."""
        used = {e["run"] for e in self.cells.values()}
        self.runs = {rid: prov for rid, prov in self.runs.items() if rid in used}

    def save(self, path: str | Path) -> Path:
        """Write the whole run (atomically) as JSON lines."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w") as f:
            for rid, prov in self.runs.items():
                f.write(json.dumps({"kind": "run", "experiment": self.experiment, "run": rid,
                                    "provenance": prov}, default=_json) + "\n")
            for entry in self.cells.values():
                f.write(json.dumps({"kind": "cell", **entry}, default=_json) + "\n")
        tmp.replace(path)
        return path


def _json(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        except TypeError:
            return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


_TIMING = ("seconds", "seconds_per_flip", "time")  # measured wall time may differ between identical runs


def _same(r1: Sequence[dict], r2: Sequence[dict]) -> bool:
    return _first_difference(r1, r2) is None


def _first_difference(r1: Sequence[dict], r2: Sequence[dict]) -> str | None:
    if len(r1) != len(r2):
        return f"{len(r1)} records vs {len(r2)}"
    for i, (a, b) in enumerate(zip(r1, r2)):
        for k in sorted(set(a) | set(b)):
            if k in _TIMING or k.endswith("_seconds"):
                continue
            if k not in a or k not in b or not _close(a[k], b[k]):
                return f"record {i}, {k}: {a.get(k)!r} vs {b.get(k)!r}"
    return None


def load(path: str | Path) -> Run:
    """Read a run file (JSON lines)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no run file at {path}")
    run_: Run | None = None
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                break  # a line cut by an interruption: the cell in flight, measured again on resume
            raise ValueError(f"{path}:{n} is not JSON") from None
        if obj.get("kind") == "run":
            if run_ is None:
                run_ = Run(obj["experiment"])
            elif obj["experiment"] != run_.experiment:
                raise ValueError(f"{path} mixes experiments {run_.experiment!r} and {obj['experiment']!r}")
            run_.runs[obj["run"]] = obj["provenance"]
        elif obj.get("kind") == "cell":
            if run_ is None:
                raise ValueError(f"{path}:{n}: a cell before any run header")
            run_.add({k: v for k, v in obj.items() if k != "kind"}, source=str(path))
        else:
            raise ValueError(f"{path}:{n}: unknown line kind {obj.get('kind')!r}")
    if run_ is None:
        raise ValueError(f"{path} holds no run")
    return run_


def _drop_cut_line(path: Path) -> None:
    """Remove a last line that an interruption cut short, so that appending continues the file."""
    text = path.read_bytes()
    if text and not text.endswith(b"\n"):
        path.write_bytes(text[: text.rfind(b"\n") + 1])


def merge(*runs: Run) -> Run:
    """One run holding the cells of all ``runs`` (same experiment); conflicting cells are refused.

    A cell held by several runs keeps the first one's record; run headers (provenance) that
    no kept cell refers to are dropped, so the result describes only what measured it (for
    example after cells were taken out of a file to be measured again)."""
    if not runs:
        raise ValueError("nothing to merge")
    names = {r.experiment for r in runs}
    if len(names) != 1:
        raise ValueError(f"cannot merge runs of different experiments: {sorted(names)}")
    out = Run(runs[0].experiment)
    for r in runs:
        out.runs.update(r.runs)
        for entry in r.cells.values():
            out.add(entry)
    out._prune_runs()
    return out


def run(
    experiment: Experiment,
    *,
    grid: Grid | None = None,
    out: str | Path | None = None,
    only: Mapping[str, Iterable[Any]] | None = None,
    show_progress: bool = True,
    profile: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Run:
    """Measure every cell of the grid that ``out`` does not hold yet; return the whole run.

    ``grid`` defaults to the experiment's grid in the active profile (or ``profile``);
    ``only`` restricts it (``{"dataset": ["cora_ml"]}``). With ``out``, finished cells are
    appended to that file as they complete, and cells already in it are not measured again
    (resume). ``context`` seeds the dict the cells share (e.g. a dataset already prepared
    by the caller, under the keys the experiment's ``measure`` looks for).
    """
    from .progress import progress

    sizes = experiment.sizes(profile)
    grid = grid if grid is not None else experiment.grid(sizes)
    if only:
        grid = grid.only(**{k: list(v) for k, v in only.items()})
    path = Path(out) if out is not None else None
    if path is not None and path.is_file():
        _drop_cut_line(path)
    result = load(path) if path is not None and path.is_file() else Run(experiment.name)
    if result.experiment != experiment.name:
        raise ValueError(f"{path} holds experiment {result.experiment!r}, not {experiment.name!r}")
    todo = result.missing(grid)
    rid = uuid.uuid4().hex[:8]
    prov = {**config.provenance(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if todo and path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps({"kind": "run", "experiment": experiment.name, "run": rid, "provenance": prov},
                               default=_json) + "\n")
    if todo:
        result.runs[rid] = prov
    context: dict[str, Any] = {"sizes": sizes, **(context or {})}
    for cell in progress(todo, desc=experiment.name, enabled=show_progress):
        t = time.perf_counter()
        recs = experiment.measure(dict(cell), context)
        recs = [recs] if isinstance(recs, Mapping) else list(recs)
        for r in recs:
            clash = set(r) & set(cell)
            if clash:
                raise ValueError(f"{experiment.name}: a record repeats the cell's keys {sorted(clash)}")
        entry = {"run": rid, "cell": dict(cell), "seconds": round(time.perf_counter() - t, 3),
                 "records": [dict(r) for r in recs]}
        result.add(entry)
        if path is not None:
            with path.open("a") as f:
                f.write(json.dumps({"kind": "cell", **entry}, default=_json) + "\n")
    return result


# --------------------------------------------------------------------------- registry and CLI

_REGISTRY: dict[str, Experiment] = {}
#: topic modules that register experiments when imported (the CLI imports them on demand)
TOPICS = ("structure", "labels", "leakage", "unlearning", "defences")


def register(exp: Experiment) -> Experiment:
    """Make ``exp`` available by name to :func:`get` and the CLI."""
    _REGISTRY[exp.name] = exp
    return exp


def get(name: str) -> Experiment:
    """The registered experiment ``name`` (topic packages register theirs when imported)."""
    if name not in _REGISTRY:
        import importlib

        for topic in TOPICS:
            try:
                importlib.import_module(f"graphtrust.{topic}.cells")
            except ModuleNotFoundError as err:
                if err.name not in (f"graphtrust.{topic}", f"graphtrust.{topic}.cells"):
                    raise
    if name not in _REGISTRY:
        raise KeyError(f"no experiment {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return _REGISTRY[name]


def _parse_only(items: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--only takes KEY=V1,V2 (got {item!r})")
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(json.loads(v))
            except json.JSONDecodeError:
                parsed.append(v)
        out[key] = parsed
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m graphtrust.experiments",
                                description="Run, resume or merge a chapter's experiment on the harness.")
    p.add_argument("experiment", help="the experiment's name")
    p.add_argument("--out", required=True, help="run file (JSON lines); cells already in it are not measured again")
    p.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUES", help="restrict the grid, e.g. dataset=cora_ml")
    p.add_argument("--merge", nargs="+", default=[], metavar="FILE", help="merge these parts into --out (no measuring)")
    p.add_argument("--drop", nargs="+", default=[], metavar="KEY=VALUES",
                   help="take these cells out of --out (no measuring), e.g. to measure them again after a fix")
    args = p.parse_args(argv)
    exp = get(args.experiment)
    grid = exp.grid(exp.sizes())
    if args.drop:
        result = load(args.out)
        print(f"dropped {result.drop(**_parse_only(args.drop))} cells")
        result.save(args.out)
    elif args.merge:
        parts = [load(f) for f in args.merge] + ([load(args.out)] if Path(args.out).is_file() else [])
        result = merge(*parts)
        result.save(args.out)
    else:
        result = run(exp, out=args.out, only=_parse_only(args.only))
    cov = result.coverage(grid)
    print(f"{exp.name}: {cov['measured']}/{cov['cells']} cells of the {exp.sizes().profile} profile's grid "
          f"in {args.out}; complete: {cov['complete']}")
    for c in cov["missing"][:10]:
        print(f"  missing: {cell_key(c)}")
    if len(cov["missing"]) > 10:
        print(f"  ... and {len(cov['missing']) - 10} more")
    return 0
