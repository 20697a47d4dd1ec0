import pytest
import torch

from graphtrust.leakage.matching import gradient_distance
from graphtrust.leakage.metrics import score
from graphtrust.leakage.model import GraphClassifier, client_gradient
from graphtrust.leakage.twins import regular_twins, twin_search


def _model(seed=0):
    torch.manual_seed(seed)
    return GraphClassifier(7, 2, hidden=16, layers=2).double()


@pytest.mark.parametrize("seed", [0, 1])
def test_regular_graphs_of_one_node_type_have_the_same_gradient_as_the_empty_graph(seed):
    model = _model(seed)
    twins = regular_twins(6, 7, atom_type=2)
    assert set(twins) == {"empty", "ring", "complete", "triangles"}
    g = {k: client_gradient(model, [(a, x, 1)]) for k, (a, x) in twins.items()}
    for k in ("ring", "complete", "triangles"):
        assert float(gradient_distance(g[k], g["empty"])) < 1e-24, k
    # one nitrogen on the ring: the rows differ, Ā no longer leaves them alone, the structure shows
    a, x = twins["ring"]
    x2 = x.clone()
    x2[0] = 0.0
    x2[0, 1] = 1.0
    d = float(gradient_distance(client_gradient(model, [(a, x2, 1)]), client_gradient(model, [(twins["empty"][0], x2, 1)])))
    assert d > 1e-6
    # and a non-regular graph of one type differs from the empty one (a path: end degrees 1, inner 2)
    path = a.clone()
    path[0, 5] = path[5, 0] = 0.0
    assert float(gradient_distance(client_gradient(model, [(path, x, 1)]), g["empty"])) > 1e-8


def test_twin_search_returns_a_graph_with_the_asked_edge_count_and_a_distance_it_measured():
    model = _model(0)
    gen = torch.Generator().manual_seed(3)
    n = 8
    a = (torch.rand(n, n, generator=gen) < 0.35).double().triu(1)
    a = a + a.t()
    x = torch.nn.functional.one_hot(torch.randint(3, (n,), generator=gen), 7).double()
    g = client_gradient(model, [(a, x, 0)])
    t = twin_search(model, g, x, int(a.sum()) // 2, steps=300, seed=0)
    assert torch.equal(t.adj, t.adj.t()) and int(t.adj.sum()) // 2 == int(a.sum()) // 2
    assert t.distance <= t.start_distance
    assert t.distance == pytest.approx(float(gradient_distance(client_gradient(model, [(t.adj, x, 0)]), g)), rel=1e-9)
    assert 0.0 <= score(t.adj, x, a, x).structure_auc <= 1.0


def test_twin_search_refuses_impossible_edge_counts_and_bad_schedules():
    model = _model(0)
    a, x = regular_twins(6, 7)["ring"]
    g = client_gradient(model, [(a, x, 0)])
    with pytest.raises(ValueError, match="num_edges"):
        twin_search(model, g, x, 16)  # 15 pairs
    with pytest.raises(ValueError, match="num_edges"):
        twin_search(model, g, x, -1)
    with pytest.raises(ValueError, match="steps"):
        twin_search(model, g, x, 6, steps=0)
    with pytest.raises(ValueError, match="atom_type"):
        regular_twins(6, 7, atom_type=7)


def test_twin_search_returns_the_one_graph_when_no_swap_exists():
    # AIDS holds two-node molecules: one edge on two nodes (or none, or all 15 on six) leaves
    # nothing to search; the graph itself comes back with its measured distance
    model = _model(0)
    x = torch.nn.functional.one_hot(torch.tensor([0, 1]), 7).double()
    bond = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    g = client_gradient(model, [(bond, x, 1)])
    t = twin_search(model, g, x, 1, steps=50)
    assert torch.equal(t.adj, bond) and t.distance == t.start_distance == pytest.approx(0.0, abs=1e-20)
    empty = twin_search(model, g, x, 0, steps=50)
    assert int(empty.adj.sum()) == 0 and empty.distance > 1e-8
    a, x6 = regular_twins(6, 7)["complete"]
    full = twin_search(model, client_gradient(model, [(a, x6, 0)]), x6, 15, steps=50)
    assert torch.equal(full.adj, a)


def test_type_pair_scores_are_the_edge_density_between_the_two_atom_types():
    from graphtrust.leakage.twins import type_pair_scores

    # C0-C1, C1-N2, N2-C3: types C, C, N, C
    a = torch.zeros(4, 4, dtype=torch.float64)
    for i, j in ((0, 1), (1, 2), (2, 3)):
        a[i, j] = a[j, i] = 1.0
    x = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 0]), 3).double()
    s = type_pair_scores(a, x)
    assert s[0, 1] == pytest.approx(1 / 3)  # one C-C edge among the 3 C-C pairs
    assert s[0, 2] == pytest.approx(2 / 3)  # two C-N edges among the 3 C-N pairs
    assert torch.equal(s, s.t()) and float(s.diagonal().abs().sum()) == 0.0


def test_composition_learns_atom_shares_from_random_graphs_and_the_twin_attack_uses_them():
    from graphtrust.leakage.decoder import auxiliary_graphs
    from graphtrust.leakage.twins import fit_composition, twin_attack

    model = _model(0)
    aux = auxiliary_graphs("random", count=300, sizes=[8, 10, 12], density=1.2, num_features=7, seed=1)
    comp = fit_composition(model, aux, ridge=10.0)
    (a, x, y), = auxiliary_graphs("random", count=1, sizes=[10], density=1.2, num_features=7, seed=99)
    g = client_gradient(model, [(a, x, y)])
    r = twin_attack(model, g, 10, comp, steps=200, seed=0)
    assert r.x.shape == (10, 7) and r.adj.shape == (10, 10)
    # the predicted atoms are close to the victim's: total variation of the shares below 0.3
    assert float((r.x.sum(0) - x.sum(0)).abs().sum()) / 2 / 10 < 0.3
    assert r.info["edges"] >= 9 and r.info["twin_distance"] <= r.info["start_distance"]
    # a two-node victim (AIDS has them): its one connected graph, the bond
    bond = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    r2 = twin_attack(model, client_gradient(model, [(bond, x[:2], y)]), 2, comp, steps=200)
    assert r2.info["edges"] == 1 and r2.adj.shape == (2, 2)
    with pytest.raises(ValueError, match="ridge"):
        fit_composition(model, aux[:5], ridge=0.0)
