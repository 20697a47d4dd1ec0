import json
import os
import subprocess
import sys

import pytest
import torch

from graphtrust.unlearning.experiments import (
    METHODS,
    Unlearner,
    bounds_trace,
    efficacy,
    load_problem,
    requests,
    rmax_tradeoff,
    run_sequence,
)


@pytest.fixture(scope="module")
def problem():
    return load_problem("sbm", num_nodes=400, num_classes=3, avg_degree=6, homophily=0.85, num_features=10,
                        feature_signal=0.8, seed=7)


@pytest.mark.parametrize("kind,batch", [("edge", 5), ("node", 2), ("feature", 2)])
def test_every_method_serves_every_kind_and_stays_close_to_retraining(problem, kind, batch):
    reqs = requests(problem, kind, 3, batch)
    runs = {m: run_sequence(problem, m, kind, reqs) for m in METHODS}
    final = {m: r["steps"][-1]["accuracy"] for m, r in runs.items()}
    assert abs(final["scalegun"] - final["retrain"]) <= 0.02 and abs(final["cgu"] - final["retrain"]) <= 0.02
    for m in ("scalegun", "cgu"):
        assert all(s["certified"] for s in runs[m]["steps"])
    # lazy and exact embeddings agree up to the push threshold: same Newton steps
    assert runs["scalegun"]["steps"][-1]["total"] == pytest.approx(runs["cgu"]["steps"][-1]["total"], rel=1e-3)


def test_exact_path_rejects_bad_requests_without_changing_state(problem):
    u = Unlearner(problem, "cgu")
    z, alive = u.embedding.clone(), u.graph.alive.clone()
    with pytest.raises(ValueError):
        u.remove("edge", torch.tensor([[0, 0]]))
    node = int(problem.train[0])
    u.remove("node", torch.tensor([node]))
    with pytest.raises(ValueError):
        u.remove("node", torch.tensor([node]))
    assert not torch.equal(z, u.embedding) and not torch.equal(alive, u.graph.alive)
    with pytest.raises(ValueError):
        Unlearner(problem, "nope")
    with pytest.raises(ValueError):
        requests(problem, "graph", 1, 1)


def test_bounds_rmax_and_efficacy(problem):
    b = bounds_trace(problem, requests(problem, "edge", 4, 1, seed=3))
    assert all(t <= d + 1e-12 for t, d in zip(b["true"], b["data_dependent"]))
    assert b["worst_case"][-1] == pytest.approx(4 * b["worst_case"][0])
    rows = rmax_tradeoff(problem, (1e-9, 1e-1), requests(problem, "edge", 1, 10, seed=4)[0])
    assert rows[0]["approximation"] <= rows[1]["approximation"] and rows[0]["pushes"] >= rows[1]["pushes"]
    e = efficacy(problem, nodes=8)
    assert e["retrain"]["deleted_as_trigger_after"] <= e["retrain"]["deleted_as_trigger_before"]
    assert set(e) >= {"scalegun", "cgu", "retrain", "member_rate_test_nodes"}


def test_scalegun_benchmark_reports_its_fields():
    # one thread: these check fields, not speed, and the test workers run side by side
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "graphtrust.bench", "scalegun", "--threads", "1", "--size", "small", "--no-model"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()
    rec = json.loads(out[-1])
    assert rec["nodes"] == 20_000 and rec["batch"] == 100
    assert rec["update_seconds"] > 0 and rec["repropagation_seconds"] > 0 and rec["speedup"] > 0
    assert rec["max_abs_error"] <= rec["error_bound_max"] + 1e-6


def test_scalegun_experiment_on_the_harness_gives_every_table(tmp_path):
    from graphtrust import config, experiment
    from graphtrust.unlearning import cells, tables

    tiny = dict(num_nodes=300, num_classes=3, avg_degree=6, homophily=0.85, num_features=10, feature_signal=0.8,
                seed=7)
    sizes = dict(datasets=("tiny",), kinds=("edge", "node"), methods=("scalegun", "cgu", "retrain"), requests=2,
                 batch={"edge": 4, "node": 2, "feature": 2}, r_max_rel=1e-7, lam=1e-2, alpha=0.1, eps=1.0,
                 delta=1e-4, bound_requests=3, rmax_grid=(1e-9, 1e-1), efficacy_nodes=6, synthetic={"tiny": tiny},
                 cost_batch=5, lazy=dict(datasets=("tiny",), alphas=(0.1, 1.0), r_max=(1e-3,),
                                         methods=("scalegun", "retrain"), requests=3, batch=4),
                 lazy_scale=dict(datasets=("tiny",), alphas=(1.0,), r_max=(1e-3, 1e-2), methods=("scalegun", "retrain"),
                                 requests=2, batch=5), runtime="-")
    config.register_sizes("scalegun-test", quick=sizes, full=sizes)
    exp = experiment.Experiment("scalegun-test", cells.grid, cells.measure)
    # the cells that read Cora read the tiny graph here
    grid = exp.grid(exp.sizes("quick"))
    assert {c["part"] for c in grid.cells()} == {"utility", "bounds", "rmax", "lazy", "lazy_scale", "efficacy", "cost"}
    # retraining never reads r_max: one cell per α, not one per α × r_max
    assert [c.get("r_max") for c in grid.cells() if c["part"] == "lazy_scale"] == [1e-3, 1e-2, None]
    grid = experiment.Grid(tuple(tuple((k, ("tiny",) if k == "dataset" else v) for k, v in b) for b in grid.blocks))
    run = experiment.run(exp, grid=grid, out=tmp_path / "sg.jsonl", profile="quick", show_progress=False)
    assert run.complete(grid) and len(run.cells) == 2 * 3 + 1 + 2 + 2 * 2 + 3 + 1 + 1
    rec = run.records
    util = tables.utility_frame(rec)
    assert list(util.index) == [("tiny", "edge"), ("tiny", "node")] and (util["removed"] == [8, 4]).all()
    assert (util["max. bound / budget"] <= 1).all() and (util["|ScaleGUN − retrain| (pts)"] <= 5).all()
    curves = tables.curves(rec)
    assert len(curves) == 2 * 3 * 3 and (curves[curves.step == 0].removed == 0).all()
    b = tables.bounds_frame(rec)
    assert list(b.index) == [1, 2, 3] and (b["true"] <= b["data_dependent"] + 1e-12).all()
    rm = tables.rmax_frame(rec)
    assert rm.loc[1e-9, "approximation"] <= rm.loc[1e-1, "approximation"]
    lazy = tables.lazy_frame(rec)
    assert len(lazy) == 4 and (lazy.xs("retrain", level="method").retrains == 3).all()
    scale = tables.lazy_frame(rec, "lazy_scale")
    assert len(scale) == 3 and scale.accuracy_before.notna().all() and (scale[["embedding_s", "model_s"]] > 0).all().all()
    assert scale.xs("retrain", level="method").retrains.tolist() == [2]  # kept, though its r_max is missing
    assert set(tables.efficacy_frame(rec).index) == {"scalegun", "cgu", "retrain"}
    cost = tables.cost_frame(rec)
    assert list(cost.index) == ["tiny"] and (cost.repeats == 3).all()
    assert (cost["speed-up low"] <= cost["request speed-up"]).all() and (cost["request speed-up"] <= cost["speed-up high"]).all()
    claims = tables.claims(rec, cells.settings(exp.sizes("quick")))
    assert len(claims) == 4 and set(claims.verdict) <= {"reproduced", "partly", "not reproduced"}
    # resuming the saved file measures nothing and gives the same records
    again = experiment.run(exp, grid=grid, out=tmp_path / "sg.jsonl", profile="quick", show_progress=False)
    assert again.records.drop(columns="_run").equals(rec.drop(columns="_run"))
