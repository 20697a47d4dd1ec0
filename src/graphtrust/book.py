"""Build the book: execute only the chapters that changed, then render the HTML.

``python -m graphtrust.book`` (run from the repository root) replaces ``jupyter-book build
. --all`` for people who build the book themselves:

* **A second build in seconds.** Each notebook of the table of contents is executed only
  when its *fingerprint* changed: the notebook itself, every file of the installed
  ``graphtrust`` library, the saved results under ``book/results/``, the profile, the
  device and the versions of Python, torch and PyG. Jupyter Book's own cache keys on the
  code cells alone and would miss a change in ``src/`` or in ``GRAPHTRUST_PROFILE``.
  Executed notebooks are kept under ``_build/.graphtrust/executed/``; the HTML is rendered
  from them by Jupyter Book with its own execution turned off.
* **A build that cannot die late.** Every cell has a time limit that fits the profile
  (:func:`graphtrust.config.sizes` ``("book").cell_timeout``); the runner prints each
  chapter as it starts and every cell that takes long, and a failing chapter does not stop
  the others. A failure is printed when it happens, naming the chapter, the cell and the
  error, and again as the last lines of the build with the command that builds the rest.
* **Progress bars stay out of the pages** (``TQDM_DISABLE=1`` in the kernels), while
  this runner reports progress in the terminal.

The record of the build (per chapter: executed or reused, seconds, slowest cells, machine,
thread policy) is written to ``_build/.graphtrust/record.json``; the book's status page
shows it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import config

__all__ = ["Chapter", "BuildError", "chapters", "fingerprint", "library_fingerprint", "execute", "build", "main"]

STATE = Path("_build") / ".graphtrust"


class BuildError(RuntimeError):
    """The book cannot be built from this folder (no _toc.yml, unknown chapter name)."""


@dataclass
class Chapter:
    """One notebook page of the book and what happened to it in this build."""

    name: str  # e.g. "ch01_metattack"
    path: Path  # the committed .ipynb
    fingerprint: str = ""
    status: str = "pending"  # executed | reused | failed | skipped
    seconds: float | None = None
    executed_at: str | None = None
    slowest_cells: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = self.path.as_posix()
        return out


# --------------------------------------------------------------------------- what to build


def chapters(root: str | Path = ".") -> list[Chapter]:
    """The notebook pages of ``root/_toc.yml`` in reading order (pages without an .ipynb are skipped)."""
    import yaml

    root = Path(root)
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BuildError(f"no _toc.yml in {root.resolve()}: run this from the repository root")
    toc = yaml.safe_load(toc_path.read_text())
    entries = [c for part in toc.get("parts", []) for c in part.get("chapters", [])] + toc.get("chapters", [])
    files = [toc["root"]] + [c["file"] for c in entries]
    out = []
    for f in files:
        nb = root / f"{f}.ipynb"
        if nb.is_file():
            out.append(Chapter(Path(f).name, nb))
    return out


def _hash_files(paths, base: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(base).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def library_fingerprint(library: Path | None = None) -> str:
    """SHA-256 over every ``.py`` file of the graphtrust package (or of ``library``)."""
    lib = Path(library) if library is not None else Path(__file__).resolve().parent
    return _hash_files((p for p in lib.rglob("*.py") if "__pycache__" not in p.parts), lib)


def environment_fingerprint() -> dict[str, str]:
    """What besides the sources decides a chapter's outputs: profile, device, versions."""
    import torch
    import torch_geometric

    return {
        "profile": config.profile_name(),
        "device": str(config.device()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
    }


def fingerprint(notebook: Path, library: str, results: str, env: dict[str, str]) -> str:
    """The key under which an executed ``notebook`` is reused."""
    h = hashlib.sha256()
    h.update(notebook.read_bytes())
    h.update(library.encode())
    h.update(results.encode())
    h.update(json.dumps(env, sort_keys=True).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- execution


def _say(msg: str) -> None:
    print(msg, flush=True)


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    text = lines[0].strip() if lines else source.strip()[:60]
    return text if len(text) <= 70 else text[:67] + "..."


def _execute_one(ch: Chapter, timeout: int | None, env: dict[str, str], slow_after: float = 30.0,
                 heartbeat_every: float = 120.0) -> Any:
    """Run every cell of ``ch`` in a fresh kernel; returns the executed notebook (also on failure)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    nb = nbformat.read(ch.path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    index = {id(c): i + 1 for i, c in enumerate(code)}
    started: dict[str, Any] = {}
    durations: list[dict[str, Any]] = []

    def on_start(cell, cell_index):  # noqa: ARG001
        started["t"], started["cell"] = time.perf_counter(), cell

    def on_executed(cell, cell_index, execute_reply):  # noqa: ARG001
        dt = time.perf_counter() - started.get("t", time.perf_counter())
        durations.append({"cell": index.get(id(cell), cell_index), "seconds": round(dt, 1),
                          "source": _first_line(cell.source)})
        if dt >= slow_after:
            _say(f"    cell {index.get(id(cell), '?')}/{len(code)} took {dt:.0f} s: {_first_line(cell.source)}")

    # Unix sockets where there are any: private to this user, and no "running over TCP" warning per
    # chapter; at an absolute path, as the kernel starts in the chapter's folder
    sockets = tempfile.mkdtemp(prefix="graphtrust-kernel-") if os.name == "posix" else None
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": f"{sockets}/k"}}) if sockets else Config()
    client = NotebookClient(
        nb, config=ipc, timeout=timeout, kernel_name="python3", allow_errors=False, record_timing=True,
        resources={"metadata": {"path": str(ch.path.parent.resolve())}},
        on_cell_start=on_start, on_cell_executed=on_executed,
    )
    old_env = dict(os.environ)
    os.environ.update(env)
    t0 = time.perf_counter()
    done = threading.Event()

    def heartbeat():  # a long cell says it is alive every `heartbeat_every` seconds
        while not done.wait(heartbeat_every):
            cell, since = started.get("cell"), started.get("t")
            if cell is not None and since is not None and time.perf_counter() - since >= heartbeat_every:
                _say(f"    cell {index.get(id(cell), '?')}/{len(code)} still running after "
                     f"{(time.perf_counter() - since) / 60:.0f} min: {_first_line(cell.source)}")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        client.execute()
        ch.status = "executed"
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        ch.status = "failed"
        failing = started.get("cell")
        kind = type(err).__name__
        detail = str(err).strip().splitlines()
        if isinstance(err, CellExecutionError) and getattr(err, "ename", None):
            kind, message = err.ename, err.evalue
        elif isinstance(err, CellTimeoutError):
            message = f"a cell ran longer than the profile's limit of {timeout} s"
        else:
            message = detail[-1] if detail else ""
        ch.error = {"cell": index.get(id(failing), "?"), "of": len(code), "kind": kind, "message": str(message)[:500],
                    "source": _first_line(failing.source) if failing is not None else ""}
    finally:
        done.set()
        if sockets:
            shutil.rmtree(sockets, ignore_errors=True)
        os.environ.clear()
        os.environ.update(old_env)
    ch.seconds = round(time.perf_counter() - t0, 1)
    ch.executed_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ch.slowest_cells = sorted(durations, key=lambda d: -d["seconds"])[:3]
    return nb


def failure_text(ch: Chapter) -> str:
    e = ch.error or {}
    return (f"FAILED  {ch.name}: code cell {e.get('cell')} of {e.get('of')} ({e.get('source')})\n"
            f"        {e.get('kind')}: {e.get('message')}")


def execute(
    root: str | Path = ".",
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    force: bool = False,
    timeout: int | None = None,
    library: Path | None = None,
    state: Path | None = None,
) -> list[Chapter]:
    """Execute the stale notebooks of the book at ``root``; reuse the others.

    Executed notebooks and the build record are kept in ``state`` (default
    ``root/_build/.graphtrust``). ``only``/``skip`` name chapters (``ch01_metattack``);
    ``force`` re-executes everything. Returns the chapters with what happened to each.
    """
    import nbformat

    root = Path(root)
    state = Path(state) if state is not None else root / STATE
    (state / "executed").mkdir(parents=True, exist_ok=True)
    chs = chapters(root)
    names = {c.name for c in chs}
    for n in [*(only or []), *(skip or [])]:
        if n not in names:
            raise BuildError(f"no chapter named {n!r}; the book has {', '.join(sorted(names))}")
    timeout = timeout if timeout is not None else config.sizes("book").cell_timeout
    lib = library_fingerprint(library)
    results_dir = root / "book" / "results"
    results = _hash_files(list(results_dir.glob("*")) if results_dir.is_dir() else [], root)
    env_fp = environment_fingerprint()
    record_path = state / "record.json"
    previous = json.loads(record_path.read_text())["chapters"] if record_path.is_file() else {}
    kernel_env = {"TQDM_DISABLE": "1", "GRAPHTRUST_BUILD_RECORD": str(record_path.resolve())}
    stale = []
    for ch in chs:
        ch.fingerprint = fingerprint(ch.path, lib, results, env_fp)
        out = state / "executed" / ch.path.name
        prev = previous.get(ch.name, {})
        wanted = (not only or ch.name in only) and ch.name not in (skip or [])
        status_page = ch.name == "status"
        if not wanted and not status_page:
            ch.status = "skipped"
        elif (not force and not status_page and out.is_file() and prev.get("fingerprint") == ch.fingerprint
              and prev.get("status") in ("executed", "reused")):
            ch.status, ch.seconds = "reused", prev.get("seconds")
            ch.executed_at, ch.slowest_cells = prev.get("executed_at"), prev.get("slowest_cells", [])
        else:
            stale.append(ch)
    # the status page describes the build, so it runs last, after the record is written
    stale.sort(key=lambda c: c.name == "status")
    _say(f"graphtrust book: {len(chs)} pages; executing {len(stale)} "
         f"({', '.join(c.name for c in stale) or 'none'}), reusing "
         f"{sum(c.status == 'reused' for c in chs)}; profile {env_fp['profile']}, "
         f"cell limit {timeout} s, {config.thread_policy()['state']}")
    _write_record(record_path, chs, env_fp, previous)  # the status page, run last, reads it
    for i, ch in enumerate(stale, 1):
        _say(f"[{i}/{len(stale)}] {ch.name}: executing ...")
        nb = _execute_one(ch, timeout, kernel_env)
        nbformat.write(nb, state / "executed" / ch.path.name)
        _write_record(record_path, chs, env_fp, previous)  # an interrupted build resumes from here
        if ch.status == "failed":
            _say(failure_text(ch))
        else:
            _say(f"[{i}/{len(stale)}] {ch.name}: done in {ch.seconds:.0f} s")
    _write_record(record_path, chs, env_fp, previous)
    return chs


def _write_record(path: Path, chs: list[Chapter], env_fp: dict[str, str],
                  previous: dict[str, Any] | None = None) -> None:
    """Write the build record; a chapter not reached yet keeps its entry from the last build."""
    from .bench import machine

    chapters = {}
    for c in chs:
        if c.status == "pending" and previous and c.name in previous:
            chapters[c.name] = previous[c.name]
        else:
            chapters[c.name] = c.record()
    rec = {
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "environment": env_fp,
        "thread_policy": config.thread_policy()["state"],
        "chapters": chapters,
    }
    path.write_text(json.dumps(rec, indent=1) + "\n")


def build_record() -> dict[str, Any] | None:
    """The record of the build this kernel runs in (``None`` outside a ``graphtrust.book`` build)."""
    path = config.build_record_path()
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- rendering


def _sync(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` only when the bytes differ (Sphinx then re-reads only changed pages)."""
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def stage(root: Path, chs: list[Chapter], state: Path) -> Path:
    """A source tree for Jupyter Book: the book's pages with executed notebooks, execution off."""
    import yaml

    src = state / "stage"
    _sync(root / "_toc.yml", src / "_toc.yml")
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg.setdefault("execute", {})["execute_notebooks"] = "off"
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not (src / "_config.yml").is_file() or (src / "_config.yml").read_text() != text:
        (src / "_config.yml").write_text(text)
    for css in (root / "book" / "_static").glob("*"):
        _sync(css, src / "book" / "_static" / css.name)
    for md in (root / "book").glob("*.md"):
        if not md.with_suffix(".ipynb").is_file():
            _sync(md, src / "book" / md.name)
    for ch in chs:
        executed = state / "executed" / ch.path.name
        _sync(executed if executed.is_file() and ch.status != "skipped" else ch.path,
              src / ch.path.relative_to(root))
    return src


def render(root: Path, chs: list[Chapter], state: Path) -> int:
    """Render the HTML book from the executed notebooks; returns Jupyter Book's exit status."""
    src = stage(root, chs, state)
    _say("rendering the HTML book (Jupyter Book, execution off) ...")
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(src), "--path-output", str(root)]
    return subprocess.run(cmd, cwd=root).returncode


#: What a stored progress bar leaves in a page (tqdm's notebook widget and its text).
PROGRESS_MARKERS = ("FloatProgressModel", "it/s]")
#: What :func:`graphtrust.plotting.show_explorer` writes above an explorer's static copy.
STATIC_MARKER = "Starting selection of the explorer above"


def check_html(html_dir: str | Path) -> list[str]:
    """Problems of a built book a reader without widget JavaScript would meet: a page that
    stores a progress bar, or an explorer (a page with widget views) without a static copy
    of its starting selection followed by a figure or a table. Empty when all is well."""
    problems = []
    pages = sorted(Path(html_dir).rglob("ch[0-9][0-9]_*.html"))
    if not pages:
        return [f"no chapter pages in {html_dir}"]
    for page in pages:
        text = page.read_text(errors="replace")
        for marker in PROGRESS_MARKERS:
            if marker in text:
                problems.append(f"{page.name}: stores a progress bar ({marker!r})")
        if "application/vnd.jupyter.widget-view+json" in text:
            at = text.find(STATIC_MARKER)
            tail = text[at:at + 200_000] if at >= 0 else ""
            if at < 0 or not re.search(r"<img |<table", tail):
                problems.append(f"{page.name}: an explorer without a static figure or table of its starting selection")
    return problems


def build(root: str | Path = ".", **kwargs) -> int:
    """Execute what changed, render the book, print the outcome; returns an exit status."""
    root = Path(root).resolve()
    t0 = time.perf_counter()
    chs = execute(root, **kwargs)
    status = render(root, chs, root / STATE)
    failed = [c for c in chs if c.status == "failed"]
    _say("")
    for c in chs:
        secs = f"{c.seconds:.0f} s" if c.seconds is not None else "-"
        _say(f"  {c.name:24s} {c.status:9s} {secs}")
    _say(f"book built in {time.perf_counter() - t0:.0f} s: open {root / '_build' / 'html' / 'index.html'}"
         if status == 0 else f"Jupyter Book failed (exit {status}); its messages are above")
    if status == 0:
        for problem in check_html(root / "_build" / "html"):
            _say(f"warning: {problem}")
    if failed:
        for c in failed:
            _say(failure_text(c))
        names = " ".join(c.name for c in failed)
        _say(f"{len(failed)} chapter(s) failed; their pages show the error. Rebuild only them with "
             f"`python -m graphtrust.book --only {names}`, or build the rest without them with "
             f"`python -m graphtrust.book --skip {names}`.")
        return 1
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphtrust.book", description=__doc__.split("\n")[0])
    p.add_argument("--check-html", metavar="DIR", default=None,
                   help="only check built pages in DIR (no stored progress bars; explorers with a static copy)")
    p.add_argument("--only", nargs="+", default=None, metavar="CHAPTER", help="execute only these chapters")
    p.add_argument("--skip", nargs="+", default=None, metavar="CHAPTER",
                   help="do not execute these (their pages are rendered without outputs)")
    p.add_argument("--force", action="store_true", help="re-execute every chapter")
    p.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: the profile's)")
    p.add_argument("--no-render", action="store_true", help="only execute; do not build the HTML")
    args = p.parse_args(argv)
    if args.check_html:
        problems = check_html(args.check_html)
        for problem in problems:
            _say(problem)
        return int(bool(problems))
    try:
        if args.no_render:
            chs = execute(".", only=args.only, skip=args.skip, force=args.force, timeout=args.timeout)
            return int(any(c.status == "failed" for c in chs))
        return build(".", only=args.only, skip=args.skip, force=args.force, timeout=args.timeout)
    except BuildError as err:
        p.error(str(err))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
