import math

import pytest
import torch

from graphtrust import datasets
from graphtrust.models import LogisticRegression
from graphtrust.splits import Split, stratified_split
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


def test_fit_selects_by_validation_accuracy(sbm):
    split = stratified_split(sbm.y, 0.2, 0.2, seed=0)
    torch.manual_seed(0)
    res = fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, split, epochs=2000, lr=0.05, patience=20,
              select="accuracy")
    h = res.history
    best = max(h, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert res.best_epoch == best["epoch"] and res.val_acc == best["val_acc"]  # the kept weights
    # stopped `patience` epochs after the last epoch that improved accuracy or the lowest loss
    last = max(r["epoch"] for i, r in enumerate(h)
               if (r["val_acc"], -r["val_loss"]) > max(((q["val_acc"], -q["val_loss"]) for q in h[:i]), default=(-1, 0))
               or r["val_loss"] < min((q["val_loss"] for q in h[:i]), default=math.inf))
    assert res.epochs_run - last == 20 and res.epochs_run < 2000
    with pytest.raises(ValueError, match="select"):
        fit(LogisticRegression(16, 3), sbm.x, None, sbm.y, split, select="f1")


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


def test_weight_decay_on_the_first_layer_only():
    from graphtrust.models import GCN

    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g)
    ei = torch.randint(30, (2, 80), generator=g)
    ei = torch.cat([ei, ei.flip(0)], 1)
    y = torch.randint(3, (30,), generator=g)
    split = Split(torch.arange(20), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long))
    norms = {}
    for decay, wd in (("all", 1.0), ("first", 1.0), ("all", 0.0)):
        torch.manual_seed(0)
        m = fit(GCN(5, 8, 3, dropout=0.0), x, ei, y, split, epochs=100, weight_decay=wd, patience=None,
                decay=decay).model
        norms[decay, wd] = (float(m.convs[0].lin.weight.norm()), float(m.convs[1].lin.weight.norm()))
    assert norms["first", 1.0][1] > 2 * norms["all", 1.0][1]  # the second layer is free
    assert norms["first", 1.0][0] < 0.5 * norms["all", 0.0][0]  # the first is decayed
    with pytest.raises(ValueError, match="decay"):
        fit(GCN(5, 8, 3), x, ei, y, split, epochs=2, decay="last")
