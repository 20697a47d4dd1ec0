"""The experiment harness: grids, resume, merge, conflicts, coverage."""

from __future__ import annotations

import json

import pytest

from graphtrust import config, experiment
from graphtrust.experiment import ConflictError, Experiment, Grid

config.register_sizes("harness-demo", quick=dict(budgets=(0.1, 0.2), seeds=(0, 1), runtime="-"),
                      full=dict(budgets=(0.1, 0.2, 0.3), seeds=(0, 1, 2), runtime="-"))


def _grid(sz):
    return (Grid.product(dataset=("a", "b"), method=("clean",), budget=(0.0,))
            | Grid.product(dataset=("a", "b"), method=("x", "y"), budget=sz.budgets))


def _measure(cell, ctx):
    ctx.setdefault("calls", []).append(cell)
    base = {"a": 0.8, "b": 0.7}[cell["dataset"]]
    drop = {"clean": 0.0, "x": 0.5, "y": 0.25}[cell["method"]] * cell["budget"]
    return [{"seed": s, "accuracy": round(base - drop + 0.01 * s, 6), "seconds": 0.01} for s in ctx["sizes"].seeds]


DEMO = Experiment("harness-demo", _grid, _measure)


def test_grid_union_product_and_only():
    g = _grid(config.sizes("harness-demo", "quick"))
    assert len(g) == 2 + 2 * 2 * 2 and g.axes == ["dataset", "method", "budget"]
    assert len(g | g) == len(g)
    assert {c["dataset"] for c in g.only(dataset=["b"]).cells()} == {"b"}
    with pytest.raises(KeyError, match="no axis 'victim'"):
        g.only(victim=["gcn"])
    with pytest.raises(TypeError, match="sequence of values"):
        Grid.product(dataset="cora")


def test_records_are_flat_with_the_cell_keys(tmp_path):
    r = experiment.run(DEMO, out=tmp_path / "r.jsonl", show_progress=False, profile="quick")
    df = r.records
    assert len(df) == 10 * 2 and {"dataset", "method", "budget", "seed", "accuracy"} <= set(df.columns)
    table = df[df.method == "x"].pivot_table(index="dataset", columns="budget", values="accuracy", aggfunc="mean")
    assert table.loc["a", 0.2] == pytest.approx(0.8 - 0.1 + 0.005)
    assert r.complete(_grid(config.sizes("harness-demo", "quick")))


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    whole = experiment.run(DEMO, out=tmp_path / "whole.jsonl", show_progress=False, profile="quick")
    path = tmp_path / "part.jsonl"
    calls = {"n": 0}

    def flaky(cell, ctx):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the machine went away in the fourth cell
        return _measure(cell, ctx)

    with pytest.raises(KeyboardInterrupt):
        experiment.run(Experiment("harness-demo", _grid, flaky), out=path, show_progress=False, profile="quick")
    assert len(experiment.load(path).cells) == 3
    with path.open("a") as f:
        f.write('{"kind": "cell", "run": "x", "cel')  # a line cut by the interruption
    ctx_calls = []

    def counting(cell, ctx):
        ctx_calls.append(cell)
        return _measure(cell, ctx)

    resumed = experiment.run(Experiment("harness-demo", _grid, counting), out=path, show_progress=False,
                             profile="quick")
    assert len(ctx_calls) == 10 - 3  # only the missing cells were measured
    cols = ["dataset", "method", "budget", "seed", "accuracy"]
    key = cols[:4]
    a = whole.records[cols].sort_values(key).reset_index(drop=True)
    b = resumed.records[cols].sort_values(key).reset_index(drop=True)
    assert a.equals(b)
    assert len(experiment.load(path).runs) == 2  # both runs' provenance is kept


def test_merge_of_disjoint_parts_equals_the_whole(tmp_path):
    whole = experiment.run(DEMO, show_progress=False, profile="quick")
    p1 = experiment.run(DEMO, only={"dataset": ["a"]}, out=tmp_path / "a.jsonl", show_progress=False, profile="quick")
    p2 = experiment.run(DEMO, only={"dataset": ["b"]}, out=tmp_path / "b.jsonl", show_progress=False, profile="quick")
    grid = _grid(config.sizes("harness-demo", "quick"))
    assert not p1.complete(grid) and len(p1.missing(grid)) == 5
    merged = experiment.merge(experiment.load(tmp_path / "a.jsonl"), experiment.load(tmp_path / "b.jsonl"))
    assert merged.complete(grid) and len(merged.runs) == 2
    cols = ["dataset", "method", "budget", "seed", "accuracy"]
    a = whole.records[cols].sort_values(cols[:4]).reset_index(drop=True)
    b = merged.records[cols].sort_values(cols[:4]).reset_index(drop=True)
    assert a.equals(b)
    merged.save(tmp_path / "m.jsonl")
    assert experiment.load(tmp_path / "m.jsonl").coverage(grid)["complete"]
    assert p2.experiment == "harness-demo"


def test_conflicting_parts_are_refused_naming_the_cell(tmp_path):
    experiment.run(DEMO, only={"dataset": ["a"]}, out=tmp_path / "a.jsonl", show_progress=False, profile="quick")

    def other(cell, ctx):
        recs = _measure(cell, ctx)
        if cell["method"] == "clean":  # a clean baseline that does not agree
            recs[0]["accuracy"] += 0.01
        return recs

    experiment.run(Experiment("harness-demo", _grid, other), only={"dataset": ["a"]}, out=tmp_path / "b.jsonl",
                   show_progress=False, profile="quick")
    with pytest.raises(ConflictError, match=r"cell \(budget=0\.0, dataset='a', method='clean'\).*accuracy"):
        experiment.merge(experiment.load(tmp_path / "a.jsonl"), experiment.load(tmp_path / "b.jsonl"))
    # identical cells from two parts (timings aside) merge silently
    experiment.run(DEMO, only={"dataset": ["a"]}, out=tmp_path / "c.jsonl", show_progress=False, profile="quick")
    both = experiment.merge(experiment.load(tmp_path / "a.jsonl"), experiment.load(tmp_path / "c.jsonl"))
    # the first part's records are kept, and the second part's header, describing none of them, is dropped
    assert set(both.runs) == set(experiment.load(tmp_path / "a.jsonl").runs) and len(both.runs) == 1


def test_coverage_reports_exactly_the_missing_cells(tmp_path):
    full_grid = _grid(config.sizes("harness-demo", "full"))
    r = experiment.run(DEMO, show_progress=False, profile="quick")
    cov = r.coverage(full_grid)
    assert cov["cells"] == 2 + 2 * 2 * 3 and cov["measured"] == 10
    assert sorted((c["dataset"], c["method"]) for c in cov["missing"]) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert all(c["budget"] == 0.3 for c in cov["missing"]) and not cov["complete"]


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run file"):
        experiment.load(tmp_path / "nope.jsonl")
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"kind": "cell", "run": "r", "cell": {}, "records": [], "seconds": 0}) + "\n")
    with pytest.raises(ValueError, match="before any run header"):
        experiment.load(p)


def test_cli_runs_resumes_and_merges(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "quick")
    experiment.register(DEMO)
    out = tmp_path / "cli.jsonl"
    experiment.main(["harness-demo", "--out", str(out), "--only", "dataset=a", "budget=0.0,0.1"])
    assert "3/10 cells" in capsys.readouterr().out
    experiment.main(["harness-demo", "--out", str(tmp_path / "b.jsonl"), "--only", "dataset=b"])
    experiment.main(["harness-demo", "--out", str(out), "--merge", str(tmp_path / "b.jsonl")])
    text = capsys.readouterr().out
    assert "8/10 cells" in text and "missing: budget=0.2, dataset='a', method='x'" in text
    with pytest.raises(KeyError, match="no experiment 'nope'"):
        experiment.get("nope")


def test_context_seeds_what_the_cells_share():
    shared = {"calls": []}
    experiment.run(DEMO, show_progress=False, profile="quick", context=shared)
    assert len(shared["calls"]) == 10  # the cells appended to the caller's list
    assert "sizes" not in shared  # the caller's dict is copied into the run's, not changed in place


def test_drop_takes_cells_out_to_be_measured_again(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "quick")
    experiment.register(DEMO)
    out = tmp_path / "d.jsonl"
    experiment.main(["harness-demo", "--out", str(out)])
    experiment.main(["harness-demo", "--out", str(out), "--drop", "method=x", "budget=0.2"])
    text = capsys.readouterr().out
    assert "dropped 2 cells" in text and "8/10 cells" in text and "budget=0.2, dataset='a', method='x'" in text
    ctx: dict = {"calls": []}
    again = experiment.run(DEMO, out=out, context=ctx, show_progress=False)
    assert len(ctx["calls"]) == 2 and {c["method"] for c in ctx["calls"]} == {"x"}  # only the dropped ones
    assert again.complete(DEMO.grid(DEMO.sizes()))
    with pytest.raises(ValueError, match="at least one"):
        experiment.load(out).drop()
    assert experiment.load(out).drop(method=["nope"]) == 0
