import itertools

import pytest
import torch

from graphtrust import datasets
from graphtrust.labels import (
    bin_pair,
    degree_attack,
    gcn_ntk,
    label_budget,
    lafak_attack,
    linear_surrogate_attack,
    ntk_map,
    random_attack,
    sgc_features,
    sgc_map,
)


@pytest.fixture(scope="module")
def graph():
    data = datasets.load("sbm", num_nodes=200, num_classes=4, avg_degree=5, homophily=0.8,
                         num_features=24, feature_signal=0.7, seed=3)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(200, generator=gen)
    return data, perm[:30].sort().values, perm[30:].sort().values


def _objective(m, labels_pool, target_labels, c):
    z = m @ torch.nn.functional.one_hot(labels_pool, c).to(m.dtype)
    return float((z * torch.nn.functional.one_hot(target_labels, c).to(m.dtype)).sum())


def test_budget():
    assert label_budget(0.05, 140) == 7 and label_budget(0.3, 140) == 42 and label_budget(0.1, 25) == 3
    with pytest.raises(ValueError):
        label_budget(0.0, 140)


def test_dual_ridge_equals_primal(graph):
    data, pool, test = graph
    xhat = sgc_features(data.x.double(), data.edge_index)
    m = sgc_map(xhat, pool, test, lam=0.5)
    xl = xhat[pool]
    primal = xhat[test] @ torch.linalg.solve(xl.t() @ xl + 0.5 * torch.eye(xl.size(1), dtype=xl.dtype), xl.t())
    assert torch.allclose(m, primal, atol=1e-9)


def test_linear_ntk_limit_is_min_norm_sgc(graph):
    """Without ReLU layers the NTK is Â X Xᵀ Â: kernel regression = ridge on ÂX as λ → 0."""
    data, pool, test = graph
    theta = gcn_ntk(data.x, data.edge_index, relu_layers=0)
    xs = sgc_features(data.x.double(), data.edge_index, k=1)
    assert torch.allclose(theta, xs @ xs.t(), atol=1e-9)
    assert torch.allclose(ntk_map(theta, pool, test), sgc_map(xs, pool, test, lam=1e-9), atol=1e-5)


def test_ntk_is_symmetric_psd(graph):
    data, _, _ = graph
    theta = gcn_ntk(data.x, data.edge_index, relu_layers=1)
    assert torch.allclose(theta, theta.t(), atol=1e-9)
    assert float(torch.linalg.eigvalsh(theta).min()) > -1e-6 * float(theta.diagonal().max())


def test_authors_ntk_variant_follows_its_formula(graph):
    """Three propagations, tangent term Θ ⊙ (S Sᵀ) ⊙ Ė: a dense re-computation, and PSD (Schur products)."""
    import math

    from graphtrust.graph import normalized_sparse

    data, _, _ = graph
    theta = gcn_ntk(data.x, data.edge_index, variant="authors")
    s = normalized_sparse(data.edge_index, data.num_nodes).double().to_dense()
    sig = s @ data.x.double() @ data.x.double().t() @ s.t()
    th = sig.clone()
    for _ in range(2):
        d = sig.diagonal().sqrt()
        q = d[:, None] * d[None, :]
        u = (sig / q).clamp(-1, 1)
        e = q * (u * (math.pi - torch.arccos(u)) + torch.sqrt(1 - u**2)) / math.pi
        e_dot = (math.pi - torch.arccos(u)) / math.pi
        sig = s @ e @ s.t()
        th = sig + th * (s @ s.t()) * e_dot
    assert torch.allclose(theta, th, rtol=1e-6, atol=1e-9)
    assert float(torch.linalg.eigvalsh(theta).min()) > -1e-6 * float(theta.diagonal().max())
    assert not torch.allclose(theta, gcn_ntk(data.x, data.edge_index))
    with pytest.raises(ValueError, match="variant"):
        gcn_ntk(data.x, data.edge_index, variant="qpcert")


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_ntk_from_sparse_features_equals_the_dense_formula(graph, layout):
    """Bag-of-words features take the Gram path S (X Xᵀ) S; it must equal the dense formula."""
    import math

    from graphtrust.graph import normalized_sparse

    data, _, _ = graph
    gen = torch.Generator().manual_seed(1)
    x = data.x.double() * (torch.rand(data.x.shape, generator=gen, dtype=torch.float64) < 0.1)  # 90 % zeros
    theta = gcn_ntk(x.to_sparse_csr() if layout == "csr" else x, data.edge_index)
    s = normalized_sparse(data.edge_index, data.num_nodes).double().to_dense()
    sig = s @ x @ x.t() @ s
    d = sig.diagonal().sqrt()
    q = d[:, None] * d[None, :]
    u = (sig / q).clamp(-1, 1)
    e = q * (u * (math.pi - torch.arccos(u)) + torch.sqrt(1 - u**2)) / math.pi
    th = s @ e @ s + s @ (sig * (math.pi - torch.arccos(u)) / math.pi) @ s
    assert torch.allclose(theta, th, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("binary", [False, True])
def test_linear_surrogate_attack_is_the_exact_optimum(graph, binary):
    data, pool, test = graph
    small_pool = pool[:10]
    xhat = sgc_features(data.x.double(), data.edge_index)
    m = sgc_map(xhat, small_pool, test)
    y = data.y
    res = linear_surrogate_attack(y, small_pool, test, y[test], m, 3, binary=binary)
    got = _objective(m, res.labels[small_pool], y[test], 4)
    # brute force over all 3-subsets and all wrong classes (BIN: the swap)
    a, b = bin_pair(y)
    best = float("inf")
    for nodes in itertools.combinations(range(10), 3):
        options = []
        for i in nodes:
            yi = int(y[small_pool[i]])
            if binary:
                options.append([b if yi == a else a] if yi in (a, b) else [])
            else:
                options.append([c for c in range(4) if c != yi])
        for choice in itertools.product(*options):
            lab = y[small_pool].clone()
            lab[list(nodes)] = torch.tensor(choice)
            best = min(best, _objective(m, lab, y[test], 4))
    assert got == pytest.approx(best, abs=1e-9)
    assert int((res.labels != y).sum()) == 3 and set(res.flipped.tolist()) <= set(small_pool.tolist())


def test_flip_sets_are_nested_and_bin_touches_two_classes(graph):
    data, pool, test = graph
    m = sgc_map(sgc_features(data.x.double(), data.edge_index), pool, test)
    small = linear_surrogate_attack(data.y, pool, test, data.y[test], m, 3, binary=True)
    large = linear_surrogate_attack(data.y, pool, test, data.y[test], m, 8, binary=True)
    assert set(small.flipped.tolist()) <= set(large.flipped.tolist())
    a, b = bin_pair(data.y)
    changed = large.labels != data.y
    assert set(data.y[changed].tolist()) <= {a, b} and set(large.labels[changed].tolist()) <= {a, b}


def test_the_attack_lowers_the_surrogate_accuracy(graph):
    data, pool, test = graph
    m = sgc_map(sgc_features(data.x.double(), data.edge_index), pool, test)

    def acc(labels):
        z = m @ torch.nn.functional.one_hot(labels[pool], 4).double()
        return float((z.argmax(1) == data.y[test]).double().mean())

    clean = acc(data.y)
    lsa = acc(linear_surrogate_attack(data.y, pool, test, data.y[test], m, 6, binary=True).labels)
    rnd = sum(acc(random_attack(data.y, pool, 6, binary=True, seed=s).labels) for s in range(5)) / 5
    assert lsa < rnd < clean + 1e-9


def test_baselines_and_lafak(graph):
    data, pool, test = graph
    r = random_attack(data.y, pool, 5, seed=1)
    assert int((r.labels != data.y).sum()) == 5 and torch.equal(r.labels, random_attack(data.y, pool, 5, seed=1).labels)
    d = degree_attack(data.y, pool, 5, data.edge_index)
    deg = torch.bincount(data.edge_index[0], minlength=200)[pool]
    assert set(d.flipped.tolist()) == set(pool[torch.argsort(deg, descending=True, stable=True)[:5]].tolist())
    m = sgc_map(sgc_features(data.x.double(), data.edge_index), pool, test)
    lf = lafak_attack(data.y, pool, test, data.y[test], m, 4, steps=20, original=False)
    a, b = bin_pair(data.y)
    assert lf.flipped.numel() == 4 and set(data.y[lf.flipped].tolist()) <= {a, b}


def test_original_lafak_flips_at_most_the_budget_and_only_above_one_half(graph, monkeypatch):
    from graphtrust.labels import attacks

    data, pool, test = graph
    m = sgc_map(sgc_features(data.x.double(), data.edge_index), pool, test)
    finals = []  # the flip probabilities α at the end of each τ's optimisation
    real_argsort = torch.argsort

    def spy(t, *args, **kw):
        if t.dtype == torch.float64 and t.dim() == 1:
            finals.append(t.clone())
        return real_argsort(t, *args, **kw)

    monkeypatch.setattr(attacks.torch, "argsort", spy)
    for budget in (2, 12):
        finals.clear()
        lf = lafak_attack(data.y, pool, test, data.y[test], m, budget, steps=30, lr=1e-2)
        assert lf.flipped.numel() <= budget and int((lf.labels != data.y).sum()) == lf.flipped.numel()
        keep = (data.y[pool] == bin_pair(data.y)[0]) | (data.y[pool] == bin_pair(data.y)[1])
        pos = {int(v): i for i, v in enumerate(pool[keep].tolist())}
        # every flipped node ended above 1/2 for the τ that won (some τ's α vector holds them all)
        assert any(all(float(al[pos[int(v)]]) > 0.5 for v in lf.flipped) for al in finals)
    monkeypatch.undo()
    # with a budget larger than the nodes above 1/2, fewer than the budget are flipped
    big = lafak_attack(data.y, pool, test, data.y[test], m, int(keep.sum()), steps=30, lr=1e-2)
    assert big.flipped.numel() < int(keep.sum())


def test_bin_pair_counts_the_whole_graph_with_a_stable_tie_break():
    # equalised pool: every class twice in the pool, so the pool's counts tie
    y = torch.tensor([0] * 5 + [1] * 9 + [2] * 2 + [3] * 9)
    pool = torch.tensor([0, 1, 5, 6, 14, 15, 16, 17])
    assert torch.bincount(y[pool]).tolist() == [2, 2, 2, 2]
    assert bin_pair(y, y[pool]) == (1, 3)  # graph counts 5, 9, 2, 9: the tie 1/3 goes to the lower id
    rnd = torch.tensor([1, 2, 3, 5, 6, 7, 8, 20, 21, 0])  # a random pool: its own top two would be (1, 0)
    assert bin_pair(y, y[rnd]) == (1, 3)
    # the attacker that only knows pool labels + pseudo-labels counts those
    assert bin_pair(torch.tensor([2, 2, 2, 0, 0, 1])) == (2, 0)
    with pytest.raises(ValueError, match=r"\(1, 3\).*absent from the labelled pool"):
        bin_pair(y, torch.tensor([0, 2]))
    res = random_attack(y, pool, 3, binary=True)
    assert set(y[res.flipped].tolist()) <= {1, 3} and set(res.labels[res.flipped].tolist()) <= {1, 3}


def test_bad_input(graph):
    data, pool, test = graph
    with pytest.raises(ValueError, match="exceeds"):
        random_attack(data.y, pool, 31)
    with pytest.raises(ValueError, match="single class"):
        random_attack(torch.zeros(10, dtype=torch.long), torch.arange(5), 1)
    with pytest.raises(ValueError, match="lie in"):
        random_attack(torch.tensor([0, 1, -1]), torch.arange(2), 1)
    with pytest.raises(ValueError, match="at least two classes"):
        bin_pair(torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="M must be"):
        linear_surrogate_attack(data.y, pool, test, data.y[test], torch.zeros(3, 3), 2)


def test_attacker_knowledge_switch(graph):
    from graphtrust.labels import attacker_labels

    data, pool, test = graph
    xhat = sgc_features(data.x, data.edge_index)
    assert torch.equal(attacker_labels(data.y, pool, test, xhat, "true"), data.y[test])
    pseudo = attacker_labels(data.y, pool, test, xhat, "pseudo")
    agree = float((pseudo == data.y[test]).float().mean())
    assert 0.5 < agree < 1.0  # informative, but not the truth
    with pytest.raises(ValueError, match="knowledge"):
        attacker_labels(data.y, pool, test, xhat, "oracle")


def test_lp_attack_flips_between_the_top_two_classes(graph):
    from graphtrust.labels import lp_attack

    data, pool, test = graph
    res = lp_attack(data.x, data.y, pool, test, data.y[test], 6, steps=200, lr=1e-3)
    a, b = bin_pair(data.y)
    assert res.flipped.numel() == 6 and set(data.y[res.flipped].tolist()) <= {a, b}
    assert int((res.labels != data.y).sum()) == 6


def test_mg_attack_flips_the_budget_once_per_node(graph):
    from graphtrust.labels import mg_attack

    data, pool, test = graph
    res = mg_attack(data.x, data.edge_index, data.y, pool, test, 7)
    changed = (res.labels != data.y).nonzero().view(-1)
    assert changed.numel() == 7 and set(changed.tolist()) == set(res.flipped.tolist()) <= set(pool.tolist())
