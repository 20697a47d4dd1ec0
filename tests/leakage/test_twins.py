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
        twin_search(model, g, x, 15)
    with pytest.raises(ValueError, match="steps"):
        twin_search(model, g, x, 6, steps=0)
    with pytest.raises(ValueError, match="atom_type"):
        regular_twins(6, 7, atom_type=7)
