import math

import pytest
import torch

from graphtrust import datasets
from graphtrust.models import LogisticRegression
from graphtrust.splits import stratified_split
from graphtrust.training import Summary, fit, repeat, summarize


@pytest.fixture(scope="module")
def sbm():
    return datasets.load("sbm", num_nodes=600, num_classes=3, num_features=16, feature_signal=0.6, seed=0)


def test_fit_early_stops_and_restores_best(sbm):
    split = stratified_split(sbm.y, 0.2, 0.2, seed=0)
    torch.manual_seed(0)
    res = fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, split, epochs=2000, lr=0.05, patience=20)
    assert res.epochs_run < 2000
    assert res.best_epoch == min(res.history, key=lambda h: h["val_loss"])["epoch"]
    assert res.epochs_run - res.best_epoch == 20
    assert res.test_acc > 0.6


def test_fit_without_validation_runs_all_epochs(sbm):
    split = stratified_split(sbm.y, 0.2, 0, seed=0)
    res = fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, split, epochs=30)
    assert res.epochs_run == 30 and math.isnan(res.val_acc)


def test_fit_rejects_bad_input(sbm):
    split = stratified_split(sbm.y, 0.2, 0.2, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, split, epochs=0)
    bad = type(split)(torch.cat([split.train, torch.tensor([10_000])]), split.val, split.test)
    with pytest.raises(ValueError, match="out of range"):
        fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, bad)
    empty = type(split)(torch.empty(0, dtype=torch.long), split.val, split.test)
    with pytest.raises(ValueError, match="empty"):
        fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, empty)


def test_summary():
    s = summarize([0.8, 0.82, 0.84])
    assert s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)
    assert s.format() == "82.0 ± 2.0"
    assert Summary((0.5,)).std == 0.0


def test_repeat_is_seeded_and_handles_mappings():
    a = repeat(lambda s: float(torch.rand(1)), [0, 1, 2])
    b = repeat(lambda s: float(torch.rand(1)), [0, 1, 2])
    assert a.values == b.values and len(set(a.values)) == 3
    d = repeat(lambda s: {"x": s, "y": 2 * s}, [1, 2])
    assert d["y"].mean == 3.0 and d["x"].seeds == (1, 2)
    with pytest.raises(ValueError):
        repeat(lambda s: 0.0, [])
