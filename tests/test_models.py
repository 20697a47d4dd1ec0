import pytest
import torch

from graphtrust import datasets, models
from graphtrust.graph import propagate, to_dense
from graphtrust.splits import Split
from graphtrust.training import fit


@pytest.fixture(scope="module")
def cora():
    return datasets.load("cora")


def test_dense_gcn_equals_sparse_gcn(cora):
    torch.manual_seed(0)
    sparse = models.GCN(cora.num_features, 16, 7).eval()
    dense = models.DenseGCN(cora.num_features, 16, 7).eval()
    for conv, lin in zip(sparse.convs, dense.lins):
        lin.weight.data.copy_(conv.lin.weight.data)
        lin.bias.data.copy_(torch.randn_like(lin.bias))
        conv.bias.data.copy_(lin.bias.data)
    adj = to_dense(cora.edge_index, cora.num_nodes)
    assert torch.allclose(sparse(cora.x, cora.edge_index), dense(cora.x, adj), atol=1e-4)


def test_dense_gcn_is_differentiable_in_the_adjacency():
    torch.manual_seed(0)
    n = 20
    adj = (torch.rand(n, n) < 0.2).float().triu(1)
    adj = (adj + adj.t()).requires_grad_(True)
    x = torch.randn(n, 5)
    model = models.DenseGCN(5, 8, 3, activation=None, bias=False, dropout=0.0)
    loss = model(x, adj).logsumexp(1).sum()
    (grad,) = torch.autograd.grad(loss, adj)
    assert grad.shape == (n, n) and grad.abs().sum() > 0
    # finite difference on one entry
    eps = 1e-3
    e = torch.zeros(n, n)
    e[2, 5] = eps
    with torch.no_grad():
        fd = (model(x, adj + e).logsumexp(1).sum() - model(x, adj - e).logsumexp(1).sum()) / (2 * eps)
    assert abs(float(fd) - float(grad[2, 5])) < 1e-2


def test_input_dropout_only_touches_nonzeros_and_keeps_the_mean():
    torch.manual_seed(0)
    x = (torch.rand(400, 300) < 0.05).float() * torch.rand(400, 300)
    drop = models.InputDropout(0.5).train()
    outs = torch.stack([drop(x) for _ in range(200)])
    assert torch.all(outs[:, x == 0] == 0)
    assert torch.allclose(outs.mean(0).sum(), x.sum(), rtol=0.02)
    kept = (outs[:, x != 0] != 0).float().mean()
    assert abs(float(kept) - 0.5) < 0.01
    drop.eval()
    assert torch.equal(drop(x), x)
    with pytest.raises(ValueError):
        models.InputDropout(1.0)


@pytest.mark.parametrize("name", ["gcn", "dense_gcn", "sgc", "mlp", "logreg"])
def test_sparse_features_give_the_dense_models_outputs_and_weight_gradients(cora, name):
    """``linear`` with CSR input (cached transpose in the backward) against the dense product,
    in training mode: the same dropout masks are drawn, so outputs and gradients must agree."""
    xs = models.sparse_features(cora.x)
    assert xs.layout == torch.sparse_csr
    graph = to_dense(cora.edge_index, cora.num_nodes) if name == "dense_gcn" else cora.edge_index
    grads = []
    for x in (cora.x, xs, xs):  # the second CSR call reuses the cached pattern
        torch.manual_seed(0)
        model = models.build(name, cora.num_features, 7).train()
        if name in ("mlp", "logreg"):
            graph = None
        torch.manual_seed(1)
        out = model(x, graph)
        out.square().sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    for out, gs in grads[1:]:
        assert torch.allclose(out, grads[0][0], atol=1e-4)
        for g, g0 in zip(gs, grads[0][1]):
            assert torch.allclose(g, g0, rtol=1e-4, atol=1e-4)


def test_linear_rebuilds_its_pattern_for_other_sparse_features():
    torch.manual_seed(0)
    w = torch.randn(4, 30, requires_grad=True)
    for density in (0.1, 0.2):  # two patterns in a row: the cache must not serve the first for the second
        x = (torch.rand(50, 30) < density).float() * torch.rand(50, 30)
        w.grad = None
        models.linear(models.sparse_features(x), w).sum().backward()
        assert torch.allclose(w.grad, x.sum(0).expand(4, 30), atol=1e-5)


def test_sgc_is_logistic_regression_on_propagated_features(cora):
    model = models.SGC(cora.num_features, 7, k=2)
    out = model(cora.x, cora.edge_index)
    ref = model.lin(propagate(cora.x, cora.edge_index, 2))
    assert torch.allclose(out, ref, atol=1e-5)


def test_build_by_name():
    assert isinstance(models.build("gcn", 10, 3), models.GCN)
    assert isinstance(models.build("logreg", 10, 3), models.LogisticRegression)
    with pytest.raises(KeyError, match="unknown model"):
        models.build("gat", 10, 3)


def test_models_learn_cora(cora):
    split = Split.from_masks(cora)
    accs = {}
    for name, model, graph in [
        ("gcn", models.GCN(cora.num_features, 16, 7), cora.edge_index),
        ("sgc", models.SGC(cora.num_features, 7), cora.edge_index),
        ("mlp", models.MLP(cora.num_features, 64, 7), None),
    ]:
        torch.manual_seed(0)
        wd = 5e-5 if name == "sgc" else 5e-4
        lr = 0.2 if name == "sgc" else 0.01
        accs[name] = fit(model, cora.x, graph, cora.y, split, epochs=200, lr=lr, weight_decay=wd).test_acc
    assert accs["gcn"] > 0.78, accs
    assert accs["sgc"] > 0.75, accs
    assert 0.4 < accs["mlp"] < accs["gcn"] - 0.1, accs  # the graph matters on Cora
