"""The node-count estimate of an attacker that is not told n, and scoring across sizes."""

import numpy as np
import pytest
import torch

from graphtrust import datasets
from graphtrust.leakage import GraphClassifier, client_gradient, defend
from graphtrust.leakage.metrics import pad, score
from graphtrust.leakage.size import NodeCount, estimate_nodes, rank_bound


def _model(features=7):
    torch.manual_seed(0)
    return GraphClassifier(features, 2, hidden=64).double()


def _generic(n, seed, features=7):
    """A random graph with continuous node attributes, node states in general position,
    and an invertible ``A + I`` (no two adjacent nodes with the same neighbours: such twins
    have equal rows in Ā, and every layer's gradient then has rank below n)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        a = (torch.rand(n, n, generator=gen) < 3.0 / n).double().triu(1)
        a = a + a.t()
        if int(torch.linalg.matrix_rank(a + torch.eye(n, dtype=a.dtype))) == n:
            return a, torch.randn(n, features, generator=gen, dtype=torch.float64), seed % 2


def _mutag(start, stop):
    out = []
    for g in datasets.load("MUTAG")[start:stop]:
        a = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
        a[g.edge_index[0], g.edge_index[1]] = 1.0
        out.append((a, g.x.double(), int(g.y)))
    return out


def test_rank_identifies_n_on_generic_graphs():
    """Continuous attributes, layers wider than the graphs: the rank bound is n, the
    auxiliaries show it is tight, and the estimate is exactly n."""
    model = _model()
    bank = [_generic(n, 100 + 7 * n + k) for n in range(4, 31) for k in range(3)]
    for n in (5, 11, 17, 23, 30):
        a, x, y = _generic(n, n)
        grads = client_gradient(model, [(a, x, y)])
        assert rank_bound(model, grads) == n
        est = estimate_nodes(model, grads, bank)
        assert est == NodeCount(n, n, 30, "rank") and est.identified


def test_bounds_contain_n_on_molecules():
    """One-hot atoms: the rank is far below n and the auxiliaries say so; the estimate
    comes from gradient distance and n lies within the reported bounds."""
    model = _model()
    bank, victims = _mutag(20, 120), _mutag(0, 6)
    high = max(a.size(0) for a, _, _ in bank + victims)
    for a, x, y in victims:
        est = estimate_nodes(model, client_gradient(model, [(a, x, y)]), bank, high=high)
        assert est.low <= a.size(0) <= est.high and est.low <= est.estimate <= est.high
        assert est.low < a.size(0) and not est.identified and est.source == "auxiliary"


def test_estimate_bad_input():
    model = _model()
    a, x, y = _generic(20, 1)
    grads = client_gradient(model, [(a, x, y)])
    with pytest.raises(ValueError, match="no auxiliary graphs"):
        estimate_nodes(model, grads, [])
    with pytest.raises(ValueError, match="rank 20, above the largest size .* \\(10\\)"):
        estimate_nodes(model, grads, [_generic(10, 2)])
    # noise makes the gradient full-rank: the bound is void, and the estimate says so
    noisy = defend(grads, noise=0.1)
    with pytest.raises(ValueError, match="outside its size prior"):
        estimate_nodes(model, noisy, [_generic(n, n) for n in range(4, 31)])


def test_score_across_node_counts():
    a, x, _ = _mutag(0, 1)[0]
    n = a.size(0)
    # the victim plus one isolated node: every edge still ranks above every non-edge
    s, xh = pad(a, x, n + 1)
    sc = score(s, xh, a, x)
    assert sc.structure_auc == 1.0 and sc.edge_f1 == 1.0
    # a node with edges missing: its edges score 0, like the non-edges
    deg = a.sum(1)
    k = int(deg.argmax())
    keep = [i for i in range(n) if i != k]
    sc = score(a[keep][:, keep], x[keep], a, x)
    assert sc.structure_auc < 1.0 and sc.edge_f1 < 1.0
    assert np.isclose(score(a, x, a, x).structure_auc, 1.0)
    with pytest.raises(ValueError, match="cannot pad"):
        pad(a, x, n - 1)


def test_alignment_free_metrics_ignore_node_order():
    from graphtrust.leakage.metrics import degree_l1, feature_histogram_tv

    a, x, _ = _mutag(0, 1)[0]
    n = a.size(0)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    assert degree_l1(a[perm][:, perm], a) == 0.0 and feature_histogram_tv(x[perm], x) == 0.0
    sc = score(a[perm][:, perm], x[perm], a, x)
    assert sc.degree_l1 == 0.0 and sc.feature_histogram_tv == 0.0
    # a path of n nodes with one atom type: degrees and atom counts differ, by known amounts
    path = torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
    path = path + path.t()
    one = torch.zeros_like(x)
    one[:, 0] = 1.0
    share0 = float((x.argmax(1) == 0).double().mean())
    assert np.isclose(feature_histogram_tv(one, x), 1.0 - share0)
    deg = np.sort(a.sum(1).numpy())[::-1]
    m = int(a.sum()) // 2
    assert m >= n - 1  # the path's n-1 edges are all among its top-m pairs
    want = np.abs(deg - np.sort(np.r_[1, 1, [2] * (n - 2)])[::-1]).mean()
    assert np.isclose(degree_l1(path, a), want)


def test_surplus_nodes_earn_nothing():
    """Padding the victim for an over-estimate must not add easy negatives: a guess with
    isolated surplus nodes scores what the guess scores alone."""
    a, x, _ = _mutag(0, 1)[0]
    n = a.size(0)
    gen = np.random.default_rng(0)
    s = np.triu(gen.random((n, n)), 1)
    s = s + s.T
    alone = score(s, x.numpy(), a, x)
    sp, xp = pad(s, x, n + 8)
    padded = score(sp, xp, a, x)
    assert np.isclose(padded.structure_auc, alone.structure_auc) and np.isclose(padded.edge_f1, alone.edge_f1)
    assert padded.degree_l1 > 0 or alone.degree_l1 > 0
