import pytest
import torch

from graphtrust import datasets
from graphtrust.unlearning import Graph, LazyPropagation, exact_embedding


@pytest.fixture(scope="module")
def data():
    return datasets.load("sbm", num_nodes=300, num_classes=3, avg_degree=6, homophily=0.8, num_features=6,
                         degree_exponent=2.5, max_degree=60, seed=3)


def _edges(g, k, seed):
    ei = g.edge_index()
    ei = ei[:, ei[0] < ei[1]]
    return ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(seed))[:k]].t()


@pytest.mark.parametrize("beta", [0.5, 1.0])
@pytest.mark.parametrize("r_max", [1e-12, 1e-3, 5e-2])
def test_invariant_and_error_bound_hold_after_random_removals(data, beta, r_max):
    g = Graph(data.edge_index, data.num_nodes)
    x = data.x.double()
    lp = LazyPropagation(g, x, r_max=r_max, weights=(0.2, 0.3, 0.5), beta=beta)
    assert torch.allclose(lp.embedding, exact_embedding(g, x, (0.2, 0.3, 0.5), beta))
    gen = torch.Generator().manual_seed(int(r_max * 1e6) + int(beta * 10))
    for step in range(12):
        kind = int(torch.randint(3, (1,), generator=gen))
        if kind == 0:
            lp.remove_edges(_edges(g, int(torch.randint(1, 6, (1,), generator=gen)), step))
        else:
            free = [i for i in range(data.num_nodes)
                    if i not in (lp.removed_nodes if kind == 1 else lp.cleared_features)]
            node = free[int(torch.randint(len(free), (1,), generator=gen))]
            (lp.remove_nodes if kind == 1 else lp.remove_features)([node])
        assert lp.invariant_error() < 1e-10
        assert all(float(r.abs().max()) <= r_max for r in lp.r)
        exact = exact_embedding(g, lp.features(), (0.2, 0.3, 0.5), beta)
        err = (exact - lp.embedding).abs().sum(0)
        assert bool((err <= lp.error_bound() + 1e-10).all()), (err, lp.error_bound())
    if r_max == 1e-12:
        assert float((exact - lp.embedding).abs().max()) < 1e-9
    # removed nodes keep only their self-loop; cleared features are zero
    for u in lp.removed_nodes:
        assert int(g.deg[u]) == 1
    for u in lp.cleared_features:
        assert float(lp.features()[u].abs().max()) < 1e-12


def test_a_large_r_max_leaves_residues_and_a_positive_bound(data):
    g = Graph(data.edge_index, data.num_nodes)
    lp = LazyPropagation(g, data.x.double(), r_max=10.0)
    lp.remove_edges(_edges(g, 20, 0))
    exact = exact_embedding(g, lp.features())
    err = (exact - lp.embedding).abs().sum(0)
    assert float(err.max()) > 0 and bool((err <= lp.error_bound() + 1e-12).all())


def test_bad_requests_raise_and_leave_the_state_unchanged(data):
    g = Graph(data.edge_index, data.num_nodes)
    lp = LazyPropagation(g, data.x.double(), r_max=1e-6)
    e = _edges(g, 1, 0)
    lp.remove_edges(e)
    lp.remove_nodes([5])
    before = (lp.embedding.clone(), g.alive.clone(), g.deg.clone(), [r.clone() for r in lp.r])
    non_edge = next((i, j) for i in range(50) for j in range(i + 1, 50)
                    if int(g.edge_positions(torch.tensor([i]), torch.tensor([j]))) < 0)
    bad = [
        (lp.remove_edges, e),  # already removed
        (lp.remove_edges, torch.tensor([non_edge])),  # never existed
        (lp.remove_edges, torch.tensor([[3, 3]])),  # self-loop
        (lp.remove_edges, torch.tensor([[0, data.num_nodes]])),  # out of range
        (lp.remove_nodes, [5]),  # twice
        (lp.remove_nodes, [7, 7]),
        (lp.remove_nodes, [-1]),
        (lp.remove_features, [data.num_nodes + 3]),
    ]
    for fn, arg in bad:
        with pytest.raises(ValueError):
            fn(arg)
    assert torch.equal(before[0], lp.embedding) and torch.equal(before[1], g.alive) and torch.equal(before[2], g.deg)
    assert all(torch.equal(a, b) for a, b in zip(before[3], lp.r))
    with pytest.raises(ValueError):
        LazyPropagation(g, data.x.double(), r_max=0.0)
