import pytest
import torch

from graphtrust import datasets
from graphtrust.unlearning import Graph, LazyPropagation, exact_embedding
from graphtrust.unlearning.certified import CertifiedLinear, noise_budget, preprocess


@pytest.fixture(scope="module")
def setup():
    data = datasets.load("sbm", num_nodes=400, num_classes=3, avg_degree=6, homophily=0.85, num_features=12,
                         feature_signal=0.8, seed=5)
    x = preprocess(data.x)
    train = torch.arange(0, 400, 2)
    return data, x, train


def test_preprocessing_and_budget():
    x = preprocess(torch.randn(50, 4) * 10 + 3)
    assert float(x.norm(dim=1).max()) == pytest.approx(1.0)
    assert noise_budget(0.1, 1.0, 1e-4) == pytest.approx(0.1 / 4.3846, rel=1e-3)
    for bad in (dict(delta=0.0), dict(delta=1.0), dict(delta=-1e-3)):
        with pytest.raises(ValueError):
            noise_budget(0.1, 1.0, **bad)


def test_primal_and_dual_hessian_solves_agree(setup):
    data, x, train = setup
    z = torch.cat([x[train], x[train] ** 2], 1)  # 24 features
    m = CertifiedLinear(3, lam=1e-2, alpha=0.1).fit(z, data.y[train])
    v = torch.randn(24, 3, dtype=torch.float64)
    primal = m.solve(m.w, z, data.y[train], v)  # 200 rows > 24 features: primal
    dual = m.solve(m.w, z[:20], data.y[train][:20], v)  # 20 rows < 24 features: dual
    h = []
    for k in range(3):
        s = 2.0 * (data.y[train][:20] == k).double() - 1
        p = torch.sigmoid(s * (z[:20] @ m.w[:, k]))
        hk = z[:20].t() @ ((p * (1 - p))[:, None] * z[:20]) + 1e-2 * 20 * torch.eye(24, dtype=torch.float64)
        h.append(torch.linalg.solve(hk, v[:, k]))
    assert torch.allclose(dual, torch.stack(h, 1), atol=1e-8)
    assert torch.isfinite(primal).all()


def test_bound_covers_the_true_residual_on_exact_data(setup):
    data, x, train = setup
    g = Graph(data.edge_index, data.num_nodes)
    lp = LazyPropagation(g, x, r_max=3e-3)  # coarse: a real approximation term
    y = data.y
    model = CertifiedLinear(3, lam=1e-2, alpha=10.0, delta=1e-4).fit(lp.embedding[train], y[train])
    ei = g.edge_index()
    ei = ei[:, ei[0] < ei[1]]
    order = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    keep = train.clone()
    for i in range(8):
        z_old, y_old = lp.embedding[keep], y[keep]
        if i % 2:
            lp.remove_edges(ei[:, order[i * 3 : i * 3 + 3]].t())
        else:
            node = int(keep[i])
            lp.remove_features([node])
            keep = keep[keep != node]
        rec = model.remove(z_old, y_old, lp.embedding[keep], y[keep], lp.error_bound())
        true = model.gradient(model.w, exact_embedding(g, lp.features())[keep], y[keep]).norm(dim=0)
        assert bool((true <= rec.total + 1e-12).all()), (true, rec.total)
        assert float(true.norm()) <= rec.model_total + 1e-12
        assert rec.certified
    assert float(rec.approximation.max()) > 0
    # a budget smaller than the approximation term cannot be met by retraining: flush
    tight = CertifiedLinear(3, lam=1e-2, alpha=0.01).fit(lp.embedding[keep], y[keep])
    rec = tight.remove(lp.embedding[keep], y[keep], lp.embedding[keep], y[keep], lp.error_bound())
    assert not rec.certified
    lp.flush()
    assert float(lp.error_bound().max()) == 0.0
    assert torch.allclose(lp.embedding, exact_embedding(g, lp.features()), atol=1e-12)


def test_exceeding_the_budget_retrains_with_fresh_noise(setup):
    data, x, train = setup
    z = x[train]
    model = CertifiedLinear(3, lam=1e-3, alpha=1e-6, delta=1e-4).fit(z, data.y[train])  # tiny budget
    b0 = model.b.clone()
    rec = model.remove(z, data.y[train], z[10:], data.y[train][10:])
    assert rec.retrained and model.retrains == 1 and not torch.equal(b0, model.b)
    with pytest.raises(RuntimeError):
        CertifiedLinear(3).remove(z, data.y[train], z, data.y[train])


def test_removal_with_embeddings_of_another_shape_is_refused(setup):
    data, x, train = setup
    z, y = x[train], data.y[train]
    model = CertifiedLinear(3, lam=1e-2, alpha=0.1).fit(z, y)
    w = model.w.clone()
    with pytest.raises(ValueError, match="fitted on"):  # e.g. a request after a retrain on another graph
        model.remove(z, y, z[:, :-1], y)
    with pytest.raises(ValueError, match="labels"):
        model.remove(z, y, z[1:], y)
    with pytest.raises(ValueError, match="0..2"):
        model.remove(z, y, z, torch.full_like(y, 3))
    with pytest.raises(ValueError, match="column_error"):
        model.remove(z, y, z, y, column_error=torch.zeros(2))
    assert torch.equal(model.w, w)  # nothing changed
    with pytest.raises(ValueError, match="positive"):
        CertifiedLinear(3, alpha=0.0)


def test_newton_bound_holds_without_unit_row_norms(setup):
    """Rows with norms up to 3 (the lazy embeddings' rows can exceed 1): the bound
    γ‖Z'‖₂‖Z'Δw‖_∞‖Z'Δw‖₂ still covers the true residual of every removal."""
    data, x, train = setup
    z = 3.0 * x[train]
    y = data.y[train]
    assert float(z.norm(dim=1).max()) > 2.5
    model = CertifiedLinear(3, lam=1e-2, alpha=0.1).fit(z, y)
    model.budget = float("inf")  # never retrain: the test is about the bound
    keep = torch.arange(z.size(0))
    for i in range(5):
        old = keep
        keep = keep[keep != int(keep[3 * i])]
        rec = model.remove(z[old], y[old], z[keep], y[keep])
        true = model.gradient(model.w, z[keep], y[keep]).norm(dim=0)
        assert bool((true <= rec.total + 1e-12).all()) and not rec.retrained


def test_the_certificate_is_on_the_model_not_on_each_class(setup):
    """Every class under the budget, their combination over it: the model is retrained."""
    data, x, train = setup
    z, y = x[train], data.y[train]
    probe = CertifiedLinear(3, lam=1e-3, alpha=100.0, seed=1).fit(z, y)
    per_class = probe.remove(z, y, z[20:], y[20:]).total
    budget = 0.5 * (float(per_class.max()) + float(per_class.norm()))
    assert float(per_class.max()) < budget < float(per_class.norm())
    model = CertifiedLinear(3, lam=1e-3, alpha=100.0, seed=1).fit(z, y)
    model.budget = budget
    rec = model.remove(z, y, z[20:], y[20:])
    assert rec.retrained and model.retrains == 1
    assert rec.causes and rec.causes[0].startswith("retrain: the accumulated bound")


def test_a_flush_comes_before_a_retrain_and_is_recorded(setup):
    import copy

    data, x, train = setup
    g = Graph(data.edge_index, data.num_nodes)
    lp = LazyPropagation(g, x, r_max=5e-3)
    y = data.y
    model = CertifiedLinear(3, lam=1e-2, alpha=100.0).fit(lp.embedding[train], y[train])
    ei = g.edge_index()
    edges = ei[:, ei[0] < ei[1]][:, ::40].t()  # 20-odd edges spread over the graph
    z_old = lp.embedding[train]
    lp.remove_edges(edges)
    dry_model, dry_lp = copy.deepcopy(model), copy.deepcopy(lp)
    lazy = dry_model.remove(z_old, y[train], dry_lp.embedding[train], y[train], dry_lp.error_bound())
    dry_lp.flush()
    exact = copy.deepcopy(model).remove(z_old, y[train], dry_lp.embedding[train], y[train], dry_lp.error_bound())
    approx, newton = float(lazy.approximation.norm()), exact.model_total
    assert approx > 100 * newton > 0
    model.budget = (approx * newton) ** 0.5  # between: flushing suffices, retraining is not needed
    calls = []

    def flush():
        calls.append(1)
        lp.flush()
        return lp.embedding[train], lp.error_bound(), None

    rec = model.remove(z_old, y[train], lp.embedding[train], y[train], lp.error_bound(), flush=flush)
    assert calls == [1] and rec.flushed and not rec.retrained and rec.certified
    assert rec.causes[0].startswith("flush:") and len(rec.causes) == 1
    assert float(rec.approximation.max()) == 0.0
    assert rec.model_total == pytest.approx(newton, rel=1e-9)


def test_both_approximation_terms_cover_the_true_gradient_gap_and_l2_is_tighter(setup):
    """Random removal sequences on a lazy propagation with a coarse r_max: the true gap
    ‖∇L_k(w; Z) − ∇L_k(w; Ẑ)‖ on the training rows never exceeds either bound."""
    data, x, train = setup
    ratios = []
    for seed in range(3):
        g = Graph(data.edge_index, data.num_nodes)
        lp = LazyPropagation(g, x, r_max=5e-3)
        y = data.y
        model = CertifiedLinear(3, lam=1e-2, alpha=1.0, seed=seed).fit(lp.embedding[train], y[train])
        ei = g.edge_index()
        ei = ei[:, ei[0] < ei[1]]
        order = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(seed))
        for i in range(6):
            lp.remove_edges(ei[:, order[4 * i : 4 * i + 4]].t())
            z_hat = lp.embedding[train]
            exact = exact_embedding(g, lp.features())[train]
            gap = (model.gradient(model.w, exact, y[train]) - model.gradient(model.w, z_hat, y[train])).norm(dim=0)
            l1 = model.approximation_term(z_hat, lp.error_bound())
            l2 = model.approximation_term(z_hat, None, frobenius=lp.frobenius_bound())
            both = model.approximation_term(z_hat, lp.error_bound(), frobenius=lp.frobenius_bound())
            assert bool((gap <= l1 + 1e-12).all()) and bool((gap <= l2 + 1e-12).all())
            assert torch.equal(both, torch.minimum(l1, l2))
            assert float((exact_embedding(g, lp.features()) - lp.embedding).norm()) <= lp.frobenius_bound() + 1e-12
            if float(l1.max()) > 0:
                ratios.append(float((l1 / l2).min()))
    assert ratios and min(ratios) > 1.0  # the L2 term is the tighter one here
    assert LazyPropagation(Graph(data.edge_index, data.num_nodes), x, r_max=5e-3, beta=1.0).frobenius_bound() is None
