"""Checks on the repository itself: chapter pairs in sync, clean notebooks, lint, toc."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAIRED = sorted(p for p in BOOK.glob("*.md") if p.read_text().startswith("---\njupytext:"))
CHAPTERS = [p for p in PAIRED if re.match(r"ch\d\d_", p.name)]


def test_there_are_paired_chapters():
    assert CHAPTERS, "no chapter found in book/"
    for md in PAIRED:
        assert md.with_suffix(".ipynb").is_file(), f"{md.name} has no .ipynb twin"
    for nb in BOOK.glob("*.ipynb"):
        assert nb.with_suffix(".md").is_file(), f"{nb.name} has no .md source"


@pytest.mark.parametrize("md", PAIRED, ids=lambda p: p.name)
def test_ipynb_is_what_its_md_generates(md, tmp_path):
    """The committed .ipynb equals `jupytext --to ipynb --update` of its .md."""
    from jupytext.cli import jupytext

    shutil.copy(md, tmp_path / md.name)
    shutil.copy(md.with_suffix(".ipynb"), tmp_path / md.with_suffix(".ipynb").name)
    jupytext(["--quiet", "--to", "ipynb", "--update", str(tmp_path / md.name)])
    regenerated = (tmp_path / md.with_suffix(".ipynb").name).read_text()
    assert regenerated == md.with_suffix(".ipynb").read_text(), (
        f"{md.with_suffix('.ipynb').name} is out of date: run "
        f"`jupytext --to ipynb --update book/{md.name}` and commit the result"
    )


def _staged_text(path):
    """The file as git's index holds it (what is committed, or about to be): CI's nbmake
    writes outputs into the working copies while these tests run beside it. Outside a git
    checkout, or for an untracked file, the file itself."""
    rel = path.resolve().relative_to(ROOT).as_posix()
    r = subprocess.run(["git", "-C", str(ROOT), "show", f":{rel}"], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else path.read_text()


@pytest.mark.parametrize("md", PAIRED, ids=lambda p: p.name)
def test_ipynb_is_committed_without_outputs(md):
    nb = json.loads(_staged_text(md.with_suffix(".ipynb")))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{md.with_suffix('.ipynb').name} carries outputs: regenerate it from the .md "
                "(delete it, then `jupytext --to ipynb --update`)"
            )


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.name)
def test_chapter_opens_with_colab_install_then_banner(md):
    nb = json.loads(md.with_suffix(".ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first, second = "".join(code[0]["source"]), "".join(code[1]["source"])
    assert 'if "google.colab" in sys.modules' in first, "first code cell must be the Colab-only install"
    assert "hide-cell" in code[0]["metadata"].get("tags", [])
    assert "config.banner(" in second, "second code cell must print the profile banner"


def test_toc_lists_existing_pages_and_config_excludes_md_twins():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.md").is_file() or (ROOT / f"{f}.ipynb").is_file(), f
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["branch"] == "main"
    assert cfg["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    from fnmatch import fnmatch

    for md in PAIRED:
        rel = md.relative_to(ROOT).as_posix()
        assert any(fnmatch(rel, pat) for pat in cfg["exclude_patterns"]), f"{rel} is not excluded"
    for md in BOOK.glob("*.md"):
        if md not in PAIRED:
            rel = md.relative_to(ROOT).as_posix()
            assert not any(fnmatch(rel, pat) for pat in cfg["exclude_patterns"]), rel


def test_ruff_is_clean():
    if shutil.which("ruff") is None and subprocess.run(
        [sys.executable, "-m", "ruff", "--version"], capture_output=True
    ).returncode:
        pytest.fail("ruff is not installed: install the test extra (pip install -e '.[test]')")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- test-command -->") == 1 and readme.count("<!-- book-command -->") == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci
    # MPLBACKEND would override the notebooks' inline backend and drop every figure
    assert "MPLBACKEND=" not in ci


#: chapters whose tables come from pandas (issue 15); the others still build some Markdown tables by hand
PANDAS_TABLES = ("ch01_metattack", "ch02_label_poisoning", "ch03_graphdlg", "ch04_scalegun", "ch05_defences")


@pytest.mark.parametrize("name", PANDAS_TABLES)
def test_chapter_code_builds_no_markdown_table(name):
    """Tables are DataFrames (HTML in the built book), not Markdown strings assembled in code;
    code cells stay short (about 15 lines; exercise solutions aside)."""
    text = (BOOK / f"{name}.md").read_text()
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S)
    assert cells
    for cell in cells:
        assert "|---" not in cell and '"---|"' not in cell, cell[:200]
        body = [ln for ln in cell.splitlines() if ln.strip() and not ln.startswith(":tags:")]
        assert len(body) <= 16 or "Solution" in cell, (len(body), cell[:200])


# What a bare Colab runtime has beyond the standard library (its scientific stack), and
# what the chapters' install cell adds: PyTorch Geometric and graphtrust with its core
# dependencies (pyproject's [project] dependencies, not the [book] or [test] extras).
COLAB_STACK = {"torch", "numpy", "scipy", "matplotlib", "pandas", "ipywidgets", "IPython", "networkx", "tqdm"}
INSTALL_CELL = {"torch_geometric", "graphtrust", "optuna"}


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.name)
def test_chapter_imports_only_what_colab_has(md):
    """A chapter must run in a bare Colab runtime after its install cell: every module it
    imports is in the standard library, Colab's stack or what the install cell installs
    (myst-nb is not: chapters glue through ``graphtrust.results.glue``)."""
    import ast
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    core = {re.split(r"[<>=\[ ;]", d)[0].replace("-", "_") for d in deps}
    assert core <= COLAB_STACK | INSTALL_CELL, f"core dependencies not covered by the list above: {core}"
    allowed = set(sys.stdlib_module_names) | COLAB_STACK | INSTALL_CELL
    for cell in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", md.read_text(), re.S):
        src = "\n".join(ln for ln in cell.splitlines() if not ln.startswith((":tags:", "%", "!")))
        for node in ast.walk(ast.parse(src)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{md.name} imports {name}, which a Colab runtime lacks"


def test_repository_is_named_in_one_place():
    """Colab links, install cells and the package metadata all point at config.REPOSITORY."""
    sys.path.insert(0, str(ROOT / "src"))
    from graphtrust.config import REPOSITORY

    url = f"https://github.com/{REPOSITORY}"
    assert f"url: {url}" in (ROOT / "_config.yml").read_text()
    assert f'Homepage = "{url}"' in (ROOT / "pyproject.toml").read_text()
    for md in CHAPTERS:
        found = set(re.findall(r"git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?@", md.read_text()))
        assert found == {REPOSITORY}, f"{md.name} installs from {found}, config.REPOSITORY is {REPOSITORY}"
