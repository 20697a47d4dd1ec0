import pytest
import torch

from graphtrust import datasets
from graphtrust.labels import linear_surrogate_attack, sgc_features, sgc_map
from graphtrust.labels.protocol import (
    corrected_protocol,
    cv_folds,
    evaluate,
    flawed_protocol,
    pitfall_steps,
)
from graphtrust.labels.victims import VICTIMS, build_victim


@pytest.fixture(scope="module")
def data():
    return datasets.load("sbm", num_nodes=400, num_classes=3, avg_degree=6, homophily=0.85,
                         num_features=16, feature_signal=0.6, seed=4)


def test_cv_folds_are_stratified_halves():
    labels = torch.tensor([0] * 10 + [1] * 6 + [2] * 4)
    for tr, va in cv_folds(labels, 3, seed=0):
        assert torch.unique(torch.cat([tr, va])).numel() == 20 and tr.numel() + va.numel() == 20
        assert torch.bincount(labels[va]).tolist() == [5, 3, 2]


def test_protocols_draw_what_they_promise(data):
    flawed = flawed_protocol(pool_size=30, validation=100, num_test=200)
    s = flawed.draw(data.y, 0)
    assert torch.bincount(data.y[s.train]).tolist() == [10, 10, 10] and s.val.numel() == 100
    corrected = corrected_protocol(pool_size=40, num_test=200)
    s = corrected.draw(data.y, 0)
    assert s.train.numel() == 40 and s.val.numel() == 0 and s.test.numel() == 200
    with pytest.raises(ValueError):
        corrected_protocol(folds=1)
    with pytest.raises(ValueError):
        corrected_protocol(grid=())


def test_pitfall_steps_fix_one_thing_at_a_time(data):
    steps = [p for _, p in pitfall_steps(pool_size=30, validation=100, num_test=150)]
    assert [p.class_equalised for p in steps] == [True, False, False, False, False]
    assert [p.clean_validation for p in steps] == [100, 100, 30, 0, 0]
    assert [len(p.grid) for p in steps[:4]] == [1, 1, 1, 1] and len(steps[4].grid) > 1
    for p in steps:
        s = p.draw(data.y, 3)
        parts = [s.train, s.val, s.test]
        assert s.train.numel() == 30 and s.val.numel() == p.clean_validation and s.test.numel() == 150
        assert torch.cat(parts).unique().numel() == sum(t.numel() for t in parts)  # disjoint
    # the same seed gives the same random pool for every random-pool step
    assert torch.equal(steps[1].draw(data.y, 3).train, steps[4].draw(data.y, 3).train)


def test_sparse_and_dense_features_train_the_same_victim(data):
    from graphtrust.models import sparse_features

    x = torch.zeros(400, 50)
    x[torch.arange(400), torch.randint(0, 50, (400,), generator=torch.Generator().manual_seed(0))] = 1.0
    xs = sparse_features(x)
    assert xs.layout == torch.sparse_csr
    for victim in VICTIMS:
        torch.manual_seed(0)
        a = build_victim(victim, 50, 3)
        torch.manual_seed(0)
        b = build_victim(victim, 50, 3)
        a.train(), b.train()
        torch.manual_seed(1)
        la = a(xs, data.edge_index)
        torch.manual_seed(1)
        lb = b(x, data.edge_index)
        assert torch.allclose(la, lb, atol=1e-5), victim  # dropout draws the same mask on the non-zeros


@pytest.mark.parametrize("victim", VICTIMS)
def test_victims_build_and_run(data, victim):
    model = build_victim(victim, 16, 3)
    assert model(data.x, data.edge_index).shape == (400, 3)


def test_poisoning_lowers_accuracy_under_the_corrected_protocol(data):
    protocol = corrected_protocol(pool_size=40, folds=2, grid=({"lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5},),
                                  epochs=100, patience=30, num_test=300)
    xhat = sgc_features(data.x.double(), data.edge_index)

    def lsa(y, pool, split):
        m = sgc_map(xhat, pool, split.test)
        return linear_surrogate_attack(y, pool, split.test, y[split.test], m, 12, binary=True).labels

    clean = evaluate(protocol, data, "gcn", None, seeds=(0, 1))
    poisoned = evaluate(protocol, data, "gcn", lsa, seeds=(0, 1))
    assert poisoned.summary.mean < clean.summary.mean - 0.05, (clean.accuracies, poisoned.accuracies)
    assert len(poisoned.chosen) == 2


def test_label_poisoning_benchmark_times_every_attack():
    import json
    import os
    import subprocess
    import sys

    # one thread: these check fields, not speed, and the test workers run side by side
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "graphtrust.bench", "label_poisoning", "--threads", "1", "--dataset", "citeseer_npz", "--pool", "60",
         "--no-accuracy", "--victims", "mlp"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip().splitlines()
    rec = json.loads(out[-1])
    assert rec["budget_flips"] == 12
    assert set(rec["attacks"]) == {"random", "random-bin", "degree", "degree-bin", "sgc", "sgc-bin", "ntk", "ntk-bin", "lafak", "lafak-topb", "lp", "mg", "meta", "meta-bin"}
    assert all(a["seconds"] >= 0 for a in rec["attacks"].values())
    cell = rec["protocol_seconds"]["mlp"]  # one protocol cell, batched and one model at a time
    assert cell["models"] == 8 and cell["batched"] > 0 and cell["one_at_a_time"] > 0
    assert 0 <= cell["accuracy_batched"] <= 1 and 0 <= cell["accuracy_one_at_a_time"] <= 1


def test_tuned_protocol_validates_its_search_space():
    from graphtrust.labels.protocol import tuned_protocol

    with pytest.raises(ValueError, match="'dropout' is empty"):
        tuned_protocol(30, space=(("lr", (0.01,)), ("dropout", ())))
    with pytest.raises(ValueError, match="trials"):
        tuned_protocol(30, trials=0)
    p = tuned_protocol(30)
    assert p.search == "optuna" and p.select == "accuracy" and p.window == 100 and p.folds == 5
