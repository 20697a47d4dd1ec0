import copy

import pytest
import torch

from graphtrust import datasets
from graphtrust.labels.ensemble import GraphInputs, VictimEnsemble, fit_ensemble
from graphtrust.labels.victims import VICTIMS, build_victim
from graphtrust.models import sparse_features
from graphtrust.splits import Split
from graphtrust.training import fit


@pytest.fixture(scope="module")
def data():
    d = datasets.load("sbm", num_nodes=300, num_classes=3, avg_degree=5, homophily=0.8,
                      num_features=40, feature_signal=0.6, seed=2)
    d.x = (d.x > 0.8).float() * d.x  # sparse enough to take the CSR path
    return d


@pytest.fixture(scope="module")
def inputs(data):
    x = sparse_features(data.x)
    assert x.layout == torch.sparse_csr
    return x, GraphInputs(x, data.edge_index)


def _members(victim, data, k, dropout=0.5, seed=0):
    out = []
    for i in range(k):
        torch.manual_seed(seed + i)
        out.append(build_victim(victim, data.num_features, 3, dropout=dropout))
    return out


@pytest.mark.parametrize("victim", VICTIMS)
def test_batched_forward_equals_each_members_own(victim, data, inputs):
    x, inp = inputs
    ms = _members(victim, data, 3)
    ens = VictimEnsemble(ms).eval()
    targets = torch.tensor([5, 1, 250, 77, 5])
    with torch.no_grad():
        ref = torch.stack([m(x, data.edge_index) for m in ms])
        assert torch.allclose(ens(inp), ref, atol=1e-5)
        assert torch.allclose(ens(inp, [2, 0]), ref[[2, 0]], atol=1e-5)
        # restricted to the receptive field of some nodes: their rows, sorted and unique
        assert torch.allclose(ens(inp, [1, 2], targets), ref[[1, 2]][:, targets.unique()], atol=1e-5)


@pytest.mark.parametrize("victim", VICTIMS)
def test_training_equals_one_model_at_a_time_without_dropout(victim, data, inputs):
    """With dropout 0 there is no randomness left: each member must follow exactly the path
    that :func:`graphtrust.training.fit` takes for the same initial weights, including its
    own learning rate, weight decay, nodes and early-stopping epoch."""
    x, inp = inputs
    ms = _members(victim, data, 3, dropout=0.0)
    solo = [copy.deepcopy(m) for m in ms]
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(data.num_nodes, generator=g)
    train = [perm[:30], perm[10:50], perm[:60]]
    val = [perm[60:90], perm[90:100], perm[60:120]]
    test = [perm[150:], perm[150:], perm[200:]]
    lr, wd = [0.01, 0.05, 0.02], [5e-4, 0.0, 5e-3]
    res = fit_ensemble(VictimEnsemble(ms), inp, data.y, train, val, test, lr=lr, weight_decay=wd, epochs=60,
                       patience=8)
    assert any(r.epochs_run < 60 for r in res), "the test should exercise early stopping"
    for i, m in enumerate(solo):
        ref = fit(m, x, data.edge_index, data.y, Split(train[i], val[i], test[i]), epochs=60, patience=8,
                  lr=lr[i], weight_decay=wd[i])
        assert (res[i].best_epoch, res[i].epochs_run) == (ref.best_epoch, ref.epochs_run)
        assert res[i].val_acc == pytest.approx(ref.val_acc) and res[i].test_acc == pytest.approx(ref.test_acc)
        for p, q in zip(ms[i].parameters(), ref.model.parameters()):
            assert torch.allclose(p, q, atol=1e-4)


def test_dropout_masks_are_independent_per_member(data, inputs):
    _, inp = inputs
    torch.manual_seed(0)
    one = build_victim("gcn", data.num_features, 3)
    ens = VictimEnsemble([copy.deepcopy(one) for _ in range(2)]).train()  # identical weights
    out = ens(inp)
    assert not torch.allclose(out[0], out[1])  # different dropout draws
    ens.eval()
    with torch.no_grad():
        out = ens(inp)
    assert torch.equal(out[0], out[1])


def test_members_without_validation_train_all_epochs(data, inputs):
    _, inp = inputs
    ms = _members("mlp", data, 2)
    empty = torch.empty(0, dtype=torch.long)
    res = fit_ensemble(VictimEnsemble(ms), inp, data.y, [torch.arange(40)] * 2, [empty, torch.arange(40, 80)],
                       [torch.arange(100, 300)] * 2, lr=[0.01] * 2, weight_decay=[0.0] * 2, epochs=15, patience=3)
    assert res[0].epochs_run == 15 and res[0].best_epoch == 15
    assert 0.0 <= res[1].test_acc <= 1.0


def test_bad_input_is_refused(data, inputs):
    _, inp = inputs
    with pytest.raises(ValueError, match="one architecture"):
        VictimEnsemble([build_victim("gcn", data.num_features, 3), build_victim("mlp", data.num_features, 3)])
    with pytest.raises(ValueError, match="dropout"):
        VictimEnsemble([build_victim("gcn", data.num_features, 3, dropout=d) for d in (0.5, 0.2)])
    with pytest.raises(ValueError, match="at least one"):
        VictimEnsemble([])
    ens = VictimEnsemble(_members("gcn", data, 2))
    idx = [torch.arange(10)] * 2
    with pytest.raises(ValueError, match="one entry per member"):
        fit_ensemble(ens, inp, data.y, idx[:1], idx, idx, lr=[0.01] * 2, weight_decay=[0.0] * 2)
    with pytest.raises(ValueError, match="out of range"):
        fit_ensemble(ens, inp, data.y, [torch.tensor([0, 999])] * 2, idx, idx, lr=[0.01] * 2, weight_decay=[0.0] * 2)
    with pytest.raises(ValueError, match="non-empty training"):
        fit_ensemble(ens, inp, data.y, [torch.empty(0, dtype=torch.long)] * 2, idx, idx, lr=[0.01] * 2,
                     weight_decay=[0.0] * 2)
    with pytest.raises(ValueError, match="shape"):
        fit_ensemble(ens, inp, data.y[:10], idx, idx, idx, lr=[0.01] * 2, weight_decay=[0.0] * 2)


def test_accuracy_selection_and_the_authors_window_rule(data, inputs):
    _, inp = inputs
    perm = torch.randperm(data.num_nodes, generator=torch.Generator().manual_seed(1))
    tr, va, te = [perm[:20]] * 2, [perm[20:60]] * 2, [perm[60:]] * 2

    def run(**kw):
        ens = VictimEnsemble(_members("gcn", data, 2, dropout=0.0))
        return fit_ensemble(ens, inp, data.y, tr, va, te, lr=[0.01, 0.05], weight_decay=[5e-4, 5e-4],
                            epochs=120, **kw)

    by_loss, by_acc = run(patience=120), run(patience=120, select="accuracy")
    # the same trajectory (no dropout, no early stop): the accuracy choice is never worse on validation
    assert all(a.val_acc >= b.val_acc for a, b in zip(by_acc, by_loss))
    assert all(a.epochs_run == b.epochs_run == 120 for a, b in zip(by_acc, by_loss))
    windowed = run(patience=120, select="accuracy", window=5)
    assert all(5 < w.epochs_run < 120 and w.best_epoch <= w.epochs_run for w in windowed)
    with pytest.raises(ValueError, match="select"):
        run(select="f1")
