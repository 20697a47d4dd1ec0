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
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "graphtrust.bench", "scalegun", "--size", "small", "--no-model"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()
    rec = json.loads(out[-1])
    assert rec["nodes"] == 20_000 and rec["batch"] == 100
    assert rec["update_seconds"] > 0 and rec["repropagation_seconds"] > 0 and rec["speedup"] > 0
    assert rec["max_abs_error"] <= rec["error_bound_max"] + 1e-6
