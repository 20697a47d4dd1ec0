import pytest
import torch

from graphtrust import datasets
from graphtrust.leakage import (
    GraphClassifier,
    client_gradient,
    closed_form_features,
    defend,
    estimate_num_nodes,
    recover_label,
    recover_pooled,
)
from graphtrust.leakage.leaks import check_gradients


@pytest.fixture(scope="module")
def mutag():
    ds = datasets.load("MUTAG")
    out = []
    for g in ds[:12]:
        adj = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
        adj[g.edge_index[0], g.edge_index[1]] = 1.0
        out.append((adj, g.x.double(), int(g.y)))
    return out


def _model(**kw):
    torch.manual_seed(0)
    return GraphClassifier(7, 2, **kw).double()


def test_label_pooled_embedding_and_node_count_leak(mutag):
    model = _model(hidden=64)
    for adj, x, y in mutag:
        grads = client_gradient(model, [(adj, x, y)])
        assert recover_label(model, grads) == y
        assert torch.allclose(recover_pooled(model, grads), model.embed(adj, x), atol=1e-10)
        assert estimate_num_nodes(model, grads) <= adj.size(0)
    # the rank is a lower bound on the node count, never above it
    gen = torch.Generator().manual_seed(0)
    for n in (6, 12, 20, 30):
        adj = (torch.rand(n, n, generator=gen) < 0.3).double().triu(1)
        adj = adj + adj.t()
        x = torch.randn(n, 7, generator=gen, dtype=torch.float64)
        est = estimate_num_nodes(model, client_gradient(model, [(adj, x, 0)]))
        assert 1 <= est <= n


def _random_graph(n, feats, seed):
    gen = torch.Generator().manual_seed(seed)
    adj = (torch.rand(n, n, generator=gen) < 3.0 / n).double().triu(1)
    adj = adj + adj.t()
    return adj, torch.randn(n, feats, generator=gen, dtype=torch.float64), seed % 2


@pytest.mark.parametrize("layers,pooling", [(1, "mean"), (2, "mean"), (2, "sum"), (3, "mean")])
def test_closed_form_features_are_exact_given_structure_and_top_mask(layers, pooling):
    """Exact under the stated conditions: true structure and top mask, layers at least n
    wide, node signals of full rank (continuous node attributes)."""
    model = _model(hidden=64, layers=layers, pooling=pooling)
    exact = 0
    for seed, n in enumerate((10, 12, 15, 20, 25, 30, 35, 40)):
        adj, x, y = _random_graph(n, 7, seed)
        grads = client_gradient(model, [(adj, x, y)])
        top = model.node_states(adj, x)[-2] > 0  # Z_L > 0: the oracle top mask
        try:
            rec = closed_form_features(model, grads, adj, top_mask=top)
        except ValueError as err:  # the function checks the conditions itself
            assert "not identifiable" in str(err)
            continue
        assert float((rec - x).norm() / x.norm()) < 1e-4
        exact += 1
    assert exact >= 4, exact


def test_one_hot_molecules_are_not_identifiable_in_closed_form(mutag):
    model = _model(hidden=64)
    failures = 0
    for adj, x, y in mutag:
        grads = client_gradient(model, [(adj, x, y)])
        top = model.node_states(adj, x)[-2] > 0
        try:
            closed_form_features(model, grads, adj, top_mask=top)
        except ValueError as err:
            assert "not identifiable" in str(err)
            failures += 1
    assert failures == len(mutag)  # atoms share one-hot features and neighbourhoods


def test_closed_form_fails_loudly_outside_its_conditions(mutag):
    singular = _model(hidden=64)
    adj, x, y = _random_graph(6, 7, 0)  # two leaves on one node: Ā is singular
    grads = client_gradient(singular, [(adj, x, y)])
    with pytest.raises(ValueError, match="singular"):
        closed_form_features(singular, grads, adj, top_mask=singular.node_states(adj, x)[-2] > 0)
    adj, x, y = mutag[0]
    narrow = _model(hidden=8)
    with pytest.raises(ValueError, match="wide"):
        closed_form_features(narrow, client_gradient(narrow, [(adj, x, y)]), adj,
                             top_mask=torch.ones(adj.size(0), 8, dtype=torch.bool))
    model = _model(hidden=64)
    grads = client_gradient(model, [(adj, x, y)])
    with pytest.raises(ValueError, match="top_mask"):
        closed_form_features(model, grads, adj)
    with pytest.raises(ValueError):
        check_gradients(model, grads[:-1])
    with pytest.raises(ValueError):
        check_gradients(model, [g.t() if g.dim() == 2 else g for g in grads])


def test_mean_pooling_after_a_linear_layer_hides_the_nodes(mutag):
    model = _model(hidden=64, last_activation=False)
    adj, x, y = mutag[1]
    grads = client_gradient(model, [(adj, x, y)])
    assert estimate_num_nodes(model, grads) == 1  # G_L has identical rows


def test_batches_mix_and_defences_change_the_gradient(mutag):
    model = _model(hidden=64)
    batch = mutag[:4]
    grads = client_gradient(model, batch)
    mixed = recover_pooled(model, grads)
    assert all(not torch.allclose(mixed, model.embed(a, x), atol=1e-6) for a, x, _ in batch)
    noisy = defend(grads, noise=0.1, clip=1.0)
    pruned = defend(grads, prune=0.9)
    total = sum(g.numel() for g in grads)
    assert sum(int((g != 0).sum()) for g in pruned) <= 0.1 * total + 1
    assert torch.sqrt(sum((g * g).sum() for g in defend(grads, clip=1e-3))) <= 1e-3 + 1e-12
    assert any(not torch.equal(a, b) for a, b in zip(noisy, grads))
    with pytest.raises(ValueError):
        defend(grads, prune=1.0)
    with pytest.raises(ValueError):
        client_gradient(model, [])
