"""The method registry, the baselines' families, the alignment's tie-break and the gains."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from graphtrust.leakage import client_gradient, dlg, idlg
from graphtrust.leakage.cells import gains, mean_ci
from graphtrust.leakage.matching import Reconstruction
from graphtrust.leakage.methods import METHODS, Problem, available, method, run_method
from graphtrust.leakage.metrics import align, align_by_structure

SIZES = dict(n_max=28, victims=6, hidden=16, layers=2, iters=8, client_aux=40, random_aux=40, decoder_epochs=3,
             decoder_hidden=32, restarts=2)


@pytest.fixture(scope="module")
def prob():
    return Problem("MUTAG", SIZES)


def test_no_gradient_baselines_ignore_the_gradient(prob):
    a, x, y = prob.victims[0]
    g = client_gradient(prob.model, [(a, x, y)])
    zero = [torch.zeros_like(t) for t in g]
    for name in available("client", "no gradient"):
        r1, r0 = run_method(prob, name, g, a.size(0), seed=3), run_method(prob, name, zero, a.size(0), seed=3)
        assert torch.equal(r1.adj, r0.adj) and torch.equal(r1.x, r0.x), name
        assert r1.adj.shape == (a.size(0), a.size(0)) and r1.x.shape == x.shape
    # ... and a gradient method does read it: given an auxiliary graph's own gradient,
    # retrieval returns that graph, at distance 0
    for b, xb, yb in prob.aux("client")[:3]:
        r = run_method(prob, "nearest-auxiliary-client", client_gradient(prob.model, [(b, xb, yb)]), b.size(0))
        assert torch.equal(r.adj, b) and r.info["distance"] < 1e-20


def test_random_same_size_draws_a_client_graph_of_that_size(prob):
    for seed in range(5):
        a, x, _ = prob.victims[seed]
        r = run_method(prob, "random-same-size-client", None, a.size(0), seed=seed)
        assert any(torch.equal(r.adj, b) and torch.equal(r.x, xb) for b, xb, _ in prob.aux("client")) \
            or r.info["drawn_from"] == 0


def test_families_settings_and_availability():
    assert {m.family for m in METHODS.values()} == {"no gradient", "gradient", "ours"}
    assert available("none") == ["random-guess", "dlg", "idlg"]
    rnd, cli = set(available("random")), set(available("client"))
    assert rnd < cli and "nearest-auxiliary-client" in cli - rnd and "prior-only-random" in rnd
    assert method("graphdlg-client@50").name == "graphdlg-client"
    with pytest.raises(ValueError, match="unknown method"):
        method("oracle")
    with pytest.raises(ValueError, match="setting"):
        available("server")


def test_bad_input_is_refused(prob):
    a, x, y = prob.victims[0]
    g = client_gradient(prob.model, [(a, x, y)])
    with pytest.raises(ValueError, match="exceeds"):
        run_method(prob, "prior-only-client", g, prob.n_max + 1)
    with pytest.raises(ValueError, match="at least 2"):
        run_method(prob, "dlg", g, 1)
    with pytest.raises(TypeError, match="no options"):
        run_method(prob, "dlg", g, a.size(0), retrieval=0)
    with pytest.raises(ValueError, match="start"):
        dlg(prob.model, g, a.size(0), restarts=0)
    from graphtrust.leakage import experiments

    with pytest.raises(ValueError, match="pool has"):
        experiments.measure_part(prob, dict(SIZES, batch_sizes=(1, len(prob.pool) + 2), ablation_victims=1), "batch")
    with pytest.raises(ValueError, match="unknown part"):
        experiments.measure_part(prob, SIZES, "everything")


def test_restarts_keep_the_best_run_and_a_start_is_used(prob):
    a, x, y = prob.victims[2]
    g = client_gradient(prob.model, [(a, x, y)])
    r = idlg(prob.model, g, a.size(0), iters=5, restarts=3)
    assert r.info["restarts"] == 3 and r.info["final_loss"] == min(r.info["restart_losses"])
    # started from the truth (scores clamped to [0.001, 0.999], a random soft label), the
    # extra run ends far closer than the random start and wins
    r = dlg(prob.model, g, a.size(0), iters=5, restarts=1, start=Reconstruction(a, x, y))
    first, from_truth = r.info["restart_losses"]
    assert r.info.get("from_start") and from_truth < 0.5 * first


def test_random_tie_break_reads_the_victim_only_through_its_signatures():
    # two triangles and a hexagon: every node has degree 2 and the same walk counts, so
    # the signatures agree; only a structure-aware tie-break can tell the victims apart
    tri = np.zeros((6, 6))
    for i, j in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        tri[i, j] = tri[j, i] = 1
    hexa = np.zeros((6, 6))
    for i in range(6):
        hexa[i, (i + 1) % 6] = hexa[(i + 1) % 6, i] = 1
    x = np.eye(2)[[0] * 6]
    rng = np.random.default_rng(1)
    diffs = 0
    for seed in range(5):
        s = rng.random((6, 6))
        s = np.triu(s, 1) + np.triu(s, 1).T
        assert np.array_equal(align(s, x, tri, x, seed=seed), align(s, x, hexa, x, seed=seed))
        diffs += not np.array_equal(align_by_structure(s, x, tri, x), align_by_structure(s, x, hexa, x))
    assert diffs > 0  # the structure tie-break does read the victim's edges
    with pytest.raises(ValueError, match="tie_break"):
        align(s, x, tri, x, tie_break="best")


def test_gains_use_the_strongest_baseline_the_same_attacker_has():
    rows = []
    values = {"random-guess": 0.5, "prior-only-random": 0.6, "prior-only-client": 0.9, "dlg": 0.55,
              "nearest-auxiliary-client": 0.95, "graphdlg-random": 0.66, "graphdlg-client": 0.99}
    for name, v in values.items():
        for victim in range(10):
            rows.append({"dataset": "D", "model_seed": 0, "victim": victim, "method": name,
                         "family": METHODS[name].family, "structure_auc": v + 0.01 * (victim % 3)})
    g = gains(pd.DataFrame(rows)).set_index(["method", "family"])
    assert g.loc[("graphdlg-random", "no gradient"), "strongest baseline"] == "prior-only-random"
    assert g.loc[("graphdlg-random", "gradient"), "strongest baseline"] == "dlg"
    assert g.loc[("graphdlg-client", "no gradient"), "strongest baseline"] == "prior-only-client"
    assert g.loc[("graphdlg-client", "gradient"), "strongest baseline"] == "nearest-auxiliary-client"
    r = g.loc[("graphdlg-random", "no gradient")]
    assert r["ratio"] == pytest.approx(0.669 / 0.609, rel=1e-6) and r["ratio 95% low"] <= r["ratio"] <= r["ratio 95% high"]
    # a victim whose AUC is undefined (a two-node graph) leaves the ratio and its interval finite
    df = pd.DataFrame(rows)
    df.loc[(df.victim == 0) & df.method.isin(["graphdlg-random", "dlg"]), "structure_auc"] = math.nan
    r = gains(df).set_index(["method", "family"]).loc[("graphdlg-random", "no gradient")]
    assert r["ratio"] == pytest.approx(0.67 / 0.61, rel=1e-6)  # victims 1-9: mean offset 0.01
    assert np.isfinite([r["ratio 95% low"], r["ratio 95% high"]]).all()


def test_mean_ci():
    s = mean_ci(pd.Series([1.0, 2.0, 3.0, math.nan]))
    assert s["n"] == 3 and s["mean"] == 2.0 and s["ci95"] == pytest.approx(4.303 * 1 / math.sqrt(3), rel=1e-3)
