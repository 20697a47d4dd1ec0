"""The book builder: executes what changed (sources, library, profile), reuses the rest, names failures."""

from __future__ import annotations

import json

import nbformat
import pytest

from graphtrust import book


def _nb(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# page")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def tiny_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/ch01_a\n  - file: book/ch02_b\n")
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: force\n")
    (tmp_path / "book" / "intro.md").write_text("# intro\n")
    _nb(tmp_path / "book" / "ch01_a.ipynb", "import os\nprint('tqdm', os.environ.get('TQDM_DISABLE'))")
    _nb(tmp_path / "book" / "ch02_b.ipynb", "x = 2", "print(x * 21)")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "mod.py").write_text("A = 1\n")
    return tmp_path, lib


def _status(chs):
    return {c.name: c.status for c in chs}


def test_second_build_reuses_and_changes_re_execute(tiny_book, monkeypatch):
    root, lib = tiny_book
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "quick")
    first = book.execute(root, library=lib)
    assert _status(first) == {"ch01_a": "executed", "ch02_b": "executed"}
    executed = nbformat.read(root / book.STATE / "executed" / "ch02_b.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["text"].strip() == "42"
    a = nbformat.read(root / book.STATE / "executed" / "ch01_a.ipynb", as_version=4)
    assert "tqdm 1" in a.cells[1].outputs[0]["text"]  # progress bars off inside the kernels

    assert _status(book.execute(root, library=lib)) == {"ch01_a": "reused", "ch02_b": "reused"}

    (lib / "mod.py").write_text("A = 2\n")  # a change in the library re-executes every chapter
    assert _status(book.execute(root, library=lib)) == {"ch01_a": "executed", "ch02_b": "executed"}

    monkeypatch.setenv("GRAPHTRUST_PROFILE", "full")  # so does a change of profile
    assert set(_status(book.execute(root, library=lib)).values()) == {"executed"}

    _nb(root / "book" / "ch02_b.ipynb", "x = 3", "print(x)")  # and of the notebook: only that one
    assert _status(book.execute(root, library=lib)) == {"ch01_a": "reused", "ch02_b": "executed"}
    record = json.loads((root / book.STATE / "record.json").read_text())
    assert record["chapters"]["ch02_b"]["status"] == "executed" and record["environment"]["profile"] == "full"


def test_results_files_are_part_of_the_fingerprint(tiny_book, monkeypatch):
    root, lib = tiny_book
    book.execute(root, library=lib, only=["ch01_a"])
    (root / "book" / "results").mkdir()
    (root / "book" / "results" / "r.json").write_text("{}")
    assert _status(book.execute(root, library=lib, only=["ch01_a"]))["ch01_a"] == "executed"


def test_a_failure_names_chapter_cell_and_error_and_others_still_run(tiny_book, capsys):
    root, lib = tiny_book
    _nb(root / "book" / "ch01_a.ipynb", "y = 1", "raise ValueError('boom')", "print('never')")
    chs = book.execute(root, library=lib)
    assert _status(chs) == {"ch01_a": "failed", "ch02_b": "executed"}
    failed = chs[0]
    assert failed.error["cell"] == 2 and failed.error["kind"] == "ValueError" and "boom" in failed.error["message"]
    out = capsys.readouterr().out
    assert "FAILED  ch01_a: code cell 2 of 3 (raise ValueError('boom'))" in out
    # a failed chapter is executed again next time, not reused
    assert _status(book.execute(root, library=lib))["ch01_a"] == "failed"


def test_a_cell_past_the_limit_fails_its_chapter(tiny_book):
    root, lib = tiny_book
    _nb(root / "book" / "ch02_b.ipynb", "import time\ntime.sleep(30)")
    ch = book.execute(root, library=lib, only=["ch02_b"], timeout=2)[1]
    assert ch.status == "failed" and ch.error["kind"] == "CellTimeoutError"
    assert "limit of 2 s" in ch.error["message"]


def test_unknown_chapter_and_missing_toc_are_clear_errors(tiny_book, tmp_path_factory):
    root, lib = tiny_book
    with pytest.raises(book.BuildError, match="no chapter named 'ch09'"):
        book.execute(root, library=lib, only=["ch09"])
    with pytest.raises(book.BuildError, match="no _toc.yml"):
        book.chapters(tmp_path_factory.mktemp("empty"))


def test_the_real_book_lists_every_chapter_once():
    from pathlib import Path

    names = [c.name for c in book.chapters(Path(__file__).resolve().parents[1])]
    assert names[0].startswith("ch00") and names[-1] == "status" and len(names) == len(set(names))


def test_an_interrupted_build_resumes_with_the_chapters_it_finished(tiny_book, monkeypatch):
    root, lib = tiny_book
    real = book._execute_one
    calls = []

    def dies_on_second(ch, *a, **k):
        calls.append(ch.name)
        if ch.name == "ch02_b":
            raise KeyboardInterrupt  # the laptop went to sleep, the user pressed Ctrl-C
        return real(ch, *a, **k)

    monkeypatch.setattr(book, "_execute_one", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        book.execute(root, library=lib)
    monkeypatch.setattr(book, "_execute_one", real)
    assert _status(book.execute(root, library=lib)) == {"ch01_a": "reused", "ch02_b": "executed"}


def test_check_html_finds_progress_bars_and_explorers_without_a_static_copy(tmp_path):
    from graphtrust.book import STATIC_MARKER, check_html

    view = '<script type="application/vnd.jupyter.widget-view+json">{}</script>'
    (tmp_path / "ch01_a.html").write_text(f"<p>fine</p>{view}<p>{STATIC_MARKER}</p><img src='x.png'>")
    (tmp_path / "ch02_b.html").write_text("<p>no widgets</p>")
    assert check_html(tmp_path) == []
    (tmp_path / "ch03_c.html").write_text(f"{view}<p>nothing static</p>")
    (tmp_path / "ch04_d.html").write_text('{"model_name": "FloatProgressModel"} 12/40 [00:01<00:03, 9.1it/s]')
    problems = check_html(tmp_path)
    assert any(p.startswith("ch03_c.html: an explorer") for p in problems)
    assert sum(p.startswith("ch04_d.html: stores a progress bar") for p in problems) == 2
    assert check_html(tmp_path / "empty") == [f"no chapter pages in {tmp_path / 'empty'}"]
