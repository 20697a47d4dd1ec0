import numpy as np
import pytest
import torch

from graphtrust import config, datasets
from graphtrust.graph import to_dense
from graphtrust.leakage import (
    GraphClassifier,
    align,
    auxiliary_graphs,
    chance,
    client_gradient,
    dlg,
    graphdlg,
    idlg,
    match,
    observation,
    score,
    train_decoder,
)
from graphtrust.leakage.decoder import canonical_order
from graphtrust.leakage.graphdlg import top_edges
from graphtrust.leakage.metrics import roc_auc


@pytest.fixture(scope="module")
def mutag():
    ds = datasets.load("MUTAG")
    graphs = [(to_dense(g.edge_index, g.num_nodes, torch.float64), g.x.double(), int(g.y)) for g in ds]
    order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(0)).tolist()
    return [graphs[i] for i in order]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GraphClassifier(7, 2, hidden=64).double()


def _permuted(a, x, seed):
    p = torch.randperm(a.size(0), generator=torch.Generator().manual_seed(seed))
    return a[p][:, p], x[p]


def test_auc_matches_its_definition():
    rng = np.random.default_rng(0)
    s, t = rng.random(200), rng.random(200) < 0.3
    pairs = [(a > b) + 0.5 * (a == b) for a in s[t] for b in s[~t]]
    assert roc_auc(s, t) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.r_[np.ones(3), np.zeros(5)], np.r_[np.ones(3), np.zeros(5)]) == 1.0


def test_alignment_undoes_a_permutation_and_scores_perfectly(mutag):
    for k, (a, x, _) in enumerate(mutag[:10]):
        ap, xp = _permuted(a, x, k)
        s = score(ap, xp, a, x)
        assert s.feature_mse == 0.0 and s.structure_auc == 1.0 and s.edge_f1 == 1.0
    a, x, _ = mutag[0]
    with pytest.raises(ValueError, match="shapes"):
        align(a[:-1, :-1], x[:-1], a, x)


def test_random_guess_is_far_from_perfect(mutag):
    aucs = [chance(a, x, seed=i).structure_auc for i, (a, x, _) in enumerate(mutag[:20])]
    assert 0.45 < np.mean(aucs) < 0.7


def test_canonical_order_is_a_graph_invariant(mutag):
    for k, (a, x, _) in enumerate(mutag[:10]):
        o = canonical_order(a, x)
        ap, xp = _permuted(a, x, k)
        op = canonical_order(ap, xp)
        # same features and degrees slot by slot (exact ties may differ in identity)
        assert torch.equal(x[o], xp[op])
        assert torch.equal(a[o][:, o].sum(1), ap[op][:, op].sum(1))


def test_dlg_and_idlg_lower_the_gradient_distance_and_return_valid_graphs(mutag, model):
    a, x, y = mutag[0]
    grads = client_gradient(model, [(a, x, y)])
    for attack in (dlg, idlg):
        r = attack(model, grads, a.size(0), iters=20)
        assert r.info["final_loss"] < r.info["start_loss"]
        assert r.adj.shape == a.shape and r.x.shape == x.shape
        assert torch.allclose(r.adj, r.adj.t()) and float(r.adj.diagonal().abs().max()) == 0.0
        assert float(r.adj.min()) >= 0 and float(r.adj.max()) <= 1
        assert torch.allclose(r.x.sum(1), torch.ones(a.size(0), dtype=r.x.dtype))
    assert idlg(model, grads, a.size(0), iters=1).label == y


def test_matching_with_the_true_structure_and_start_stays_at_zero_loss(mutag, model):
    a, x, y = mutag[1]
    grads = client_gradient(model, [(a, x, y)])
    r = match(model, grads, a.size(0), adj=a, x_init=x.clamp(1e-6, 1), label=y, iters=5)
    assert r.info["final_loss"] < 1e-6
    with pytest.raises(ValueError, match="adj"):
        match(model, grads, a.size(0), adj=a[:-1, :-1], label=y)
    with pytest.raises(ValueError, match="label"):
        match(model, grads, a.size(0), label=5)


def test_auxiliary_graphs_and_bad_input():
    g = auxiliary_graphs("random", count=50, sizes=[10, 20], density=1.2, num_features=5, seed=0)
    assert len(g) == 50 and all(a.size(0) in (10, 20) for a, _, _ in g)
    assert all(torch.equal(a, a.t()) and float(a.diagonal().sum()) == 0 for a, _, _ in g)
    dens = np.mean([float(a.sum()) / 2 / a.size(0) for a, _, _ in g])
    assert 0.9 < dens < 1.5
    with pytest.raises(ValueError, match="empty"):
        auxiliary_graphs("client", graphs=[], count=10)
    with pytest.raises(ValueError, match="kind"):
        auxiliary_graphs("other", count=3)
    with pytest.raises(ValueError):
        auxiliary_graphs("random", count=3)


def test_decoder_learns_from_client_graphs_and_graphdlg_beats_dlg(mutag, model):
    victims, pool = mutag[:8], mutag[30:]
    dec = train_decoder(model, auxiliary_graphs("client", graphs=pool, count=150), n_max=28, epochs=60,
                        hidden=256, show_progress=False)
    assert dec.info["auxiliary"] == 150
    a, x, y = victims[0]
    s, f = dec.decode(observation(model, client_gradient(model, [(a, x, y)]), a.size(0)), a.size(0))
    assert s.shape == a.shape and f.shape == x.shape and torch.allclose(s, s.t())
    with pytest.raises(ValueError, match="slots"):
        dec.decode(observation(model, client_gradient(model, [(a, x, y)]), a.size(0)), 29)
    ours, base = [], []
    for i, (a, x, y) in enumerate(victims):
        grads = client_gradient(model, [(a, x, y)])
        r = graphdlg(model, grads, a.size(0), dec, iters=30, seed=i)
        assert r.label == y
        ours.append(score(r.adj, r.x, a, x))
        d = dlg(model, grads, a.size(0), iters=30, seed=i)
        base.append(score(d.adj, d.x, a, x))
    assert np.mean([s.structure_auc for s in ours]) > np.mean([s.structure_auc for s in base])
    assert np.mean([s.feature_mse for s in ours]) < np.mean([s.feature_mse for s in base])
    with pytest.raises(ValueError, match="empty"):
        train_decoder(model, [], n_max=28)
    with pytest.raises(ValueError, match="n_max"):
        train_decoder(model, pool[:3], n_max=5)


def test_top_edges():
    s = torch.tensor([[0, 0.9, 0.1], [0.9, 0, 0.5], [0.1, 0.5, 0]])
    a = top_edges(s, 2)
    assert torch.equal(a, torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0.0]]))


def test_ablations_experiment_end_to_end(tmp_path):
    from graphtrust import experiment
    from graphtrust.leakage import experiments
    from graphtrust.leakage.cells import ABLATIONS

    base = dict(config.sizes("graphdlg", "quick"))
    base.update(victims=3, iters=5, client_aux=40, random_aux=40, decoder_epochs=5, decoder_hidden=32,
                pictures=2, ablation_victims=2, aux_counts=(10,), batch_sizes=(1, 2), architectures=((32, 1),),
                noise_grid=(0.0, 0.1), prune_grid=(0.9,), defence_epochs=1)
    sz = config.Sizes("graphdlg", "test", base)
    grid = ABLATIONS.grid(sz)
    assert [c["part"] for c in grid.cells()] == list(experiments.PARTS)
    run = experiment.run(ABLATIONS, grid=grid, out=tmp_path / "abl.jsonl", show_progress=False, context={"sizes": sz})
    df = experiment.load(tmp_path / "abl.jsonl").records  # what was saved is what the chapter reads
    assert len(df) == len(run.records)
    pics = df[df.part == "pictures"]
    assert set(pics.method) == {"victim", "prior", *sz["methods"]} and sorted(pics.victim.unique()) == [0, 1]
    frame = experiments.variants_frame(df, "aux_counts", "auxiliary graphs")
    assert list(frame.index) == ["10"] and frame["structure_auc", "mean"].between(0, 1).all()
    assert len(experiments.variants_frame(df, "structure")) == 4 and len(experiments.variants_frame(df, "features")) == 5
    assert list(experiments.batch_frame(df).index) == [1, 2]
    assert list(experiments.architectures_frame(df).index) == ["32x1"]
    noise = experiments.defence_frame(df, "noise")
    assert list(noise.index) == [0.0, 0.1] and noise[("model", "accuracy")].between(0, 1).all()
    assert list(experiments.defence_frame(df, "prune").index) == [0.9]
    with pytest.raises(KeyError, match="no records of part"):
        experiments.defence_frame(df[df.part != "noise"], "noise")

    import matplotlib

    matplotlib.use("Agg")
    from graphtrust.leakage.explorer import draw_reconstructions, explorer

    by = {(m, v): r for m, v, r in zip(pics.method, pics.victim, pics.to_dict("records"))}
    axes = draw_reconstructions(by["victim", 0], {"dlg": by["dlg", 0]})
    assert len(axes) == 2 and "edges right" in axes[1].get_title()
    experiments.plot_defences(df, no_gradient={"structure_auc": 0.7})
    explorer(df, experiments.LABELS)  # builds the widgets and renders once


def test_retrieval_finds_an_isomorphic_copy_and_graphdlg_recovers_it_exactly(mutag, model):
    from graphtrust.leakage.decoder import retrieve
    from graphtrust.leakage.experiments import has_copy

    victim = mutag[3]
    a, x, y = victim
    ap, xp = _permuted(a, x, 11)
    bank = [(g[0], g[1]) for g in mutag[40:60]] + [(ap, xp)]
    grads = client_gradient(model, [victim])
    top = retrieve(model, grads, bank, a.size(0), y, k=3)
    assert top[0][2] < 1e-20 and torch.equal(top[0][0], ap)
    assert all(t[0].size(0) == a.size(0) for t in top)
    assert has_copy(victim, bank) and not has_copy(victim, bank[:-1])
    dec = train_decoder(model, auxiliary_graphs("client", graphs=mutag[40:80], count=40), n_max=28, epochs=3,
                        hidden=32, show_progress=False)
    r = graphdlg(model, grads, a.size(0), dec, bank=bank, features="candidate", iters=5)
    s = score(r.adj, r.x, a, x)
    assert r.info["structure_from"] == "retrieved" and s.edge_f1 == 1.0 and s.feature_mse == 0.0
    with pytest.raises(ValueError, match="features"):
        graphdlg(model, grads, a.size(0), dec, features="magic")
    with pytest.raises(ValueError, match="at most"):
        graphdlg(model, grads, 40, dec)


def test_quadratic_alignment_is_optimal_on_small_graphs_and_flatters_noise(mutag):
    import itertools

    from graphtrust.leakage.metrics import align_quadratic

    rng = np.random.default_rng(0)
    for _ in range(10):
        n = 6
        a = np.triu((rng.random((n, n)) < 0.4).astype(float), 1)
        a = a + a.T
        x = np.eye(3)[rng.integers(0, 3, n)]
        s = rng.random((n, n))
        s = np.triu(s, 1) + np.triu(s, 1).T
        xh = rng.random((n, 3))

        def energy(p, a=a, x=x, s=s, xh=xh):
            p = np.asarray(p)
            return ((xh - x[p]) ** 2).sum() + 0.5 * ((s - a[np.ix_(p, p)]) ** 2).sum()

        best = min(energy(p) for p in itertools.permutations(range(n)))
        assert energy(align_quadratic(s, xh, a, x)) <= best * 1.25 + 1e-9
    quad = np.mean([chance(a, x, seed=i, aligner=align_quadratic).structure_auc for i, (a, x, _) in enumerate(mutag[:15])])
    fair = np.mean([chance(a, x, seed=i).structure_auc for i, (a, x, _) in enumerate(mutag[:15])])
    assert quad > fair + 0.1
