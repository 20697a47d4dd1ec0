"""Defences: each model trains, purifies what it should, and is differentiable where it says."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from graphtrust import config, datasets, experiment
from graphtrust.defences import DEFENCES, Defence, accuracy, build, prbcd, train
from graphtrust.defences import evaluate as ev
from graphtrust.defences.cells import MAIN, THREATS, apply_flips, transfer_flips
from graphtrust.defences.models import SVDGCN, JaccardGCN, feature_similarity, ppr_topk, soft_median
from graphtrust.splits import stratified_split


@pytest.fixture(scope="module")
def graph():
    data = datasets.sbm_graph(num_nodes=300, num_classes=3, avg_degree=6.0, homophily=0.85, num_features=32,
                              feature_signal=0.6, seed=1)
    data.x = (data.x > 0.5).float()  # bag-of-words-like binary features
    return data, stratified_split(data.y, 0.1, 0.1, seed=0)


@pytest.mark.parametrize("name", list(DEFENCES))
def test_every_defence_learns_and_is_differentiable_in_edge_weights(graph, name):
    data, split = graph
    tr = train(name, data, split, seed=0, epochs=150, patience=30)
    acc = accuracy(tr.model, data, data.edge_index, split.test)
    assert acc > 0.6, f"{name} does not learn ({acc:.2f}; chance is 0.33)"
    w = torch.ones(data.edge_index.size(1), requires_grad=True)
    out = tr.model(data.x, data.edge_index, w)
    (g,) = torch.autograd.grad(out.logsumexp(1).sum(), w)
    assert torch.isfinite(g).all() and g.abs().sum() > 0, f"{name}: no gradient reaches the edge weights"


def test_jaccard_drops_exactly_the_dissimilar_edges(graph):
    data, _ = graph
    sim = feature_similarity(data.x, "jaccard")
    b = data.x != 0
    u, v = 3, 7
    inter, union = (b[u] & b[v]).sum(), (b[u] | b[v]).sum()
    assert sim[u, v].item() == pytest.approx((inter / union).item())
    m = JaccardGCN(data.num_features, 3, threshold=0.2)
    keep = m.keep(data.x, data.edge_index)
    assert torch.equal(keep, sim[data.edge_index[0], data.edge_index[1]] >= 0.2)
    assert 0 < keep.float().mean() < 1  # the threshold bites on this graph
    m0 = JaccardGCN(data.num_features, 3, threshold=0.0).eval()
    assert torch.allclose(m0(data.x, data.edge_index), m0.gcn(data.x, data.edge_index))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_thresholds_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="threshold"):
        JaccardGCN(8, 2, threshold=bad)
    with pytest.raises(ValueError, match="threshold"):
        build("gnnguard", datasets.sbm_graph(num_nodes=30, num_classes=2, seed=0), threshold=bad)


def test_svd_rank_is_checked_and_respected(graph):
    data, _ = graph
    with pytest.raises(ValueError, match="rank 400 exceeds the number of nodes 300"):
        build("svd", data, rank=400)
    low = SVDGCN(data.num_features, 3, rank=5).low_rank(data.edge_index, None, data.num_nodes)
    s = torch.linalg.svdvals(low)
    assert low.shape == (300, 300) and bool((low >= 0).all())
    assert s[12] < 0.35 * s[0]  # clipping negatives adds a little rank, not much


def test_svd_without_clipping_keeps_the_signed_rank_r_matrix(graph):
    data, _ = graph
    signed = SVDGCN(data.num_features, 3, rank=5, clip=False).low_rank(data.edge_index, None, data.num_nodes)
    clipped = SVDGCN(data.num_features, 3, rank=5).low_rank(data.edge_index, None, data.num_nodes)
    assert bool((signed < 0).any()) and torch.equal(signed.clamp_min(0.0), clipped)  # same sketch, then the clip
    assert int(torch.linalg.matrix_rank(signed)) == 5
    deg = SVDGCN(data.num_features, 3, rank=5, clip=False).degrees(data.edge_index, data.num_nodes)
    assert torch.allclose(deg, signed.sum(1) + 1)
    with pytest.raises(ValueError, match="clip must be True or False, got 'no'"):
        SVDGCN(8, 2, clip="no")


@pytest.mark.parametrize("name", ["svd", "soft-median-gdc"])
def test_purified_graph_cache_follows_the_graph_not_its_memory(graph, name):
    """The cache of the purified graph (low-rank matrix, diffusion) is reused for the same edge
    tensor and recomputed when that tensor changes in place: same memory, same size, new graph."""
    data, _ = graph
    model = build(name, data).eval()
    ei = data.edge_index.clone()
    first = model(data.x, ei)
    assert torch.equal(model(data.x, ei), first)  # a hit gives the same output
    hits = model._memo.value
    assert model._memo.get(ei, data.num_nodes) is hits  # and the same cached object
    ei[1] = ei[1].roll(1)  # rewire in place: data_ptr and size unchanged
    fresh = build(name, data).eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.allclose(model(data.x, ei), fresh(data.x, ei.clone()))  # not the stale graph
    assert not torch.allclose(model(data.x, ei), first)


def test_soft_median_ignores_an_outlier_the_mean_follows():
    h = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [50.0, 50.0]])
    nb = torch.tensor([[0, 1, 2, 3]])
    w = torch.full((1, 4), 0.25)
    robust = soft_median(h, nb, w, temperature=0.5)[0]
    mean = soft_median(h, nb, w, temperature=1e6)[0]
    assert robust.norm() < 0.2
    assert mean.allclose(h.mean(0), atol=1e-3)


def test_ppr_rows_are_distributions_with_k_entries(graph):
    data, _ = graph
    ei, w = ppr_topk(data.edge_index, None, data.num_nodes, alpha=0.15, k=16)
    assert ei.size(1) == 16 * data.num_nodes
    sums = torch.zeros(data.num_nodes).index_add_(0, ei[1], w)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        ppr_topk(data.edge_index, None, data.num_nodes, alpha=1.5)


def test_apply_flips_toggles_pairs_and_refuses_bad_ones(graph):
    data, _ = graph
    n, ei = data.num_nodes, data.edge_index
    e = ei[:, ei[0] < ei[1]][:, 0].tolist()  # an existing edge
    non = next((0, j) for j in range(1, n) if not bool(((ei[0] == 0) & (ei[1] == j)).any()))
    out = apply_flips(ei, torch.tensor([e, list(non)]), n)
    assert out.size(1) == ei.size(1)  # one removed, one inserted, both directions
    has = lambda g, a, b: bool(((g[0] == a) & (g[1] == b)).any())  # noqa: E731
    assert not has(out, *e) and not has(out, e[1], e[0]) and has(out, *non) and has(out, non[1], non[0])
    back = apply_flips(out, torch.tensor([e, list(non)]), n)
    assert torch.equal(back, ei[:, (ei[0] * n + ei[1]).argsort()])
    for bad, msg in (([[2, 2]], "itself"), ([[0, n]], "outside"), ([[0, 5], [5, 0]], "twice")):
        with pytest.raises(ValueError, match=msg):
            apply_flips(ei, torch.tensor(bad), n)


def test_prbcd_lowers_accuracy_within_budget_and_refuses_what_it_cannot_differentiate(graph, monkeypatch):
    data, split = graph
    tr = train("gcn", data, split, seed=0, epochs=150, patience=30)
    clean = accuracy(tr.model, data, data.edge_index, split.test)
    ei, flips, _ = prbcd(tr.model, data, split, 0.2, epochs=30, resample=24, block_size=20_000)
    assert flips.size(1) <= ev.budget_flips(0.2, data)
    assert accuracy(tr.model, data, ei, split.test) < clean - 0.05
    monkeypatch.setitem(DEFENCES, "fixed", Defence("fixed", "fixed", DEFENCES["gcn"].factory, "", None, ""))
    with pytest.raises(ValueError, match="'fixed' has no differentiable form"):
        prbcd(tr.model, data, split, 0.05, name="fixed")
    with pytest.raises(ValueError, match="budget"):
        ev.budget_flips(1.5, data)


def test_rgcn_adds_its_kl_term_to_training(graph):
    data, _ = graph
    m = build("rgcn", data)
    assert float(m.regularization()) == 0.0
    m.train()
    m(data.x, data.edge_index)
    assert float(m.regularization()) > 0


def _fake_transfer_file(data, k: int, tmp_path):
    """A saved ``metattack_graphs`` run holding ``k`` random flips for split 0 of the SBM graph."""
    g = torch.Generator().manual_seed(0)
    pairs = torch.randint(0, data.num_nodes, (4 * k, 2), generator=g)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = torch.unique(pairs.sort(1).values, dim=0)[:k]
    fake = experiment.Experiment("metattack_graphs", lambda sz: experiment.Grid.product(dataset=["sbm"], split=[0],
                                 attack_seed=[0]), lambda c, x: {"flips": pairs.tolist()}, chapter="metattack")
    path = tmp_path / "graphs.jsonl"
    experiment.run(fake, out=path, show_progress=False)
    return path


def test_one_cell_measures_every_threat(graph, tmp_path):
    data, split = graph
    k = ev.budget_flips(0.1, data)
    path = _fake_transfer_file(data, k, tmp_path)
    assert transfer_flips("sbm", 0, path).shape == (k, 2)
    ctx = {"dataset": "sbm", "data": data, "splits": {0: split}, "clean": {}, "gcn_attack": {}, "transfer": path}
    grid = experiment.Grid.product(dataset=["sbm"], split=[0], defence=["jaccard"], budget=[0.0, 0.1], model_seed=[0])
    df = experiment.run(MAIN, grid=grid, context=ctx, show_progress=False).records
    assert set(df.attack) == set(THREATS)
    assert df.accuracy.between(0, 1).all()
    with pytest.raises(KeyError, match="no Meta-Self graph for dataset='sbm', split=3"):
        transfer_flips("sbm", 3, path)


@pytest.mark.usefixtures("one_thread")  # bitwise: the same training twice
def test_adversarial_warmup_cells_keep_only_adversarial_epochs_and_match_the_registered_defence(graph, tmp_path):
    from graphtrust.defences.cells import ADVERSARIAL_WARMUP

    data, split = graph
    sz = config.sizes("defences")
    path = _fake_transfer_file(data, ev.budget_flips(max(sz.budgets), data), tmp_path)
    ctx = {"dataset": "sbm", "data": data, "splits": {0: split}, "clean": {}, "gcn_attack": {}, "transfer": path}
    grid = experiment.Grid.product(dataset=["sbm"], split=[0], graph=["meta-self"], warmup_rounds=[0, 1],
                                   model_seed=[0])
    df = experiment.run(ADVERSARIAL_WARMUP, grid=grid, context=ctx, show_progress=False).records
    w1, w0 = df[df.warmup_rounds == 1].iloc[0], df[df.warmup_rounds == 0].iloc[0]
    assert w1.kept_epoch > 20 and (df.kept_epoch <= 200).all() and (df.gcn_kept_epoch >= 1).all()
    k = ev.budget_flips(max(sz.budgets), data)
    assert w1.flips == k and w1.budget == max(sz.budgets)
    poisoned = apply_flips(data.edge_index, transfer_flips("sbm", 0, path)[:k], data.num_nodes)
    registered = train("adversarial", data, split, seed=0, edge_index=poisoned)  # as every other cell trains it
    assert w1.accuracy == accuracy(registered.model, data, poisoned, split.test)
    assert w0.gcn_accuracy == w1.gcn_accuracy  # the same GCN beside both, trained as in every other cell
    gcn = train("gcn", data, split, seed=0, edge_index=poisoned, epochs=sz.epochs, patience=sz.patience)
    assert w1.gcn_accuracy == accuracy(gcn.model, data, poisoned, split.test) and w1.gcn_kept_epoch == gcn.kept_epoch


@pytest.mark.usefixtures("one_thread")  # bitwise: the same training twice
def test_svd_clip_cells_pair_the_clipped_and_signed_model_on_one_sketch(graph):
    from graphtrust.defences.cells import SVD_CLIP

    data, split = graph
    ctx = {"dataset": "sbm", "data": data, "splits": {0: split}, "clean": {}, "gcn_attack": {}}
    grid = experiment.Grid.product(dataset=["sbm"], split=[0], clip=[True, False], model_seed=[0])
    df = experiment.run(SVD_CLIP, grid=grid, context=ctx, show_progress=False).records.set_index(["clip", "attack"])
    sz = config.sizes("defences")
    assert (df.budget == min(b for b in sz.budgets if b > 0)).all()
    assert df.negative_share.nunique() == 1 and df.negative_mass.nunique() == 1  # the same clean-graph matrix
    assert 0 < df.negative_share.iloc[0] < 1 and df.negative_mass.iloc[0] > 0
    for clip in (True, False):
        adv = df.loc[(clip, "adaptive-evasion")]
        assert adv.flips == ev.budget_flips(adv.budget, data) and adv.propagation_change > 0
        assert adv.accuracy <= df.loc[(clip, "clean")].accuracy
    clipped = train("svd", data, split, seed=0, epochs=sz.epochs, patience=sz.patience)  # the registered defence
    assert df.loc[(True, "clean")].accuracy == accuracy(clipped.model, data, data.edge_index, split.test)
    from graphtrust.defences import tables

    t = tables.svd_clip_table(df.reset_index()).loc[("sbm", 0)]
    attacked = df.xs("adaptive-evasion", level="attack").accuracy * 100
    assert t["signed − clipped, attacked"] == pytest.approx(round(attacked[False] - attacked[True], 3), abs=2e-3)
    assert t["clipped, clean"] == pytest.approx(100 * df.loc[(True, "clean")].accuracy, abs=1e-3)
    main = pd.DataFrame([dict(dataset="sbm", split=0, defence=n, attack="adaptive-evasion", budget=b, accuracy=a)
                         for n, b, a in (("gcn", adv.budget, 0.7), ("gcn", 0.5, 0.1), ("svd", adv.budget, 0.2))])
    assert tables.svd_clip_table(df.reset_index(), main).loc[("sbm", 0), "GCN, adaptive-evasion"] == 70.0


def _records(adaptive_drop: dict[str, list[float]]) -> pd.DataFrame:
    """Synthetic defences_main records: 3 splits, GCN and two defences, budgets 0 and 0.1."""
    rows = []
    for split in range(3):
        for name, drops in adaptive_drop.items():
            base = 0.80 if name == "gcn" else 0.85
            rows.append(dict(dataset="cora_ml", split=split, model_seed=0, defence=name, budget=0.0, attack="clean",
                             accuracy=base + 0.05, attack_seconds=0.0, train_seconds=1.0))
            for threat in ("poisoning", "evasion"):
                rows.append(dict(dataset="cora_ml", split=split, model_seed=0, defence=name, budget=0.1,
                                 attack=f"transfer-{threat}", accuracy=base))
                rows.append(dict(dataset="cora_ml", split=split, model_seed=0, defence=name, budget=0.1,
                                 attack=f"adaptive-{threat}", accuracy=base - drops[split]))
    return pd.DataFrame(rows)


def test_robustness_kept_and_claims_use_paired_intervals_over_cells():
    from graphtrust.defences import tables

    # Jaccard: adaptive always 5 points below transfer; GNNGuard: noise around zero
    df = _records({"gcn": [0.0, 0.0, 0.0], "jaccard": [0.05, 0.05, 0.05], "gnnguard": [0.02, -0.02, 0.01]})
    kept = tables.robustness_kept(df).loc[("evasion", "10 %")]
    assert kept.loc["Jaccard-GCN", "adaptive − transfer"] == pytest.approx(-5.0)
    assert kept.loc["Jaccard-GCN", "adaptive − transfer: 95 % CI ±"] == pytest.approx(0.0)
    assert kept.loc["Jaccard-GCN", "kept"] == pytest.approx(0.0)  # 5 points apparent gain, none left
    assert kept.loc["GNNGuard", "cells"] == 3 and kept.loc["GNNGuard", "adaptive − transfer: 95 % CI ±"] > 2
    c = tables.claims(df)
    assert c.loc["evasion", "verdict"] == "partly"  # GNNGuard's mean drop (-0.33) is not below -0.5 ± CI
    assert "GNNGuard" in c.loc["evasion", "measured cause"] and "±" in c.loc["evasion", "measured cause"]
    acc = tables.accuracy_table(df)
    assert acc.loc["Jaccard-GCN", ("10 %", "adaptive-evasion")] == "80.0 ± 0.0"  # three cells, no spread
    assert tables.accuracy_table(df[df.split == 0]).loc["Jaccard-GCN", ("10 %", "adaptive-evasion")] == "80.0"
    extra = _records({"gcn": [0.0] * 3}).assign(split=7, accuracy=0.1)  # a split only GCN was run on
    c2 = tables.claims(pd.concat([df, extra], ignore_index=True))
    assert c2.loc["evasion", "ours (10 %)"] == c.loc["evasion", "ours (10 %)"]  # GCN from the defences' cells only
    c = tables.claims(_records({"gcn": [0.0] * 3, "jaccard": [0.05] * 3, "gnnguard": [0.06, 0.05, 0.07]}))
    assert c.loc["evasion", "verdict"] == "reproduced"


def test_a_defence_spared_meta_pgd_where_gcn_met_it_has_its_kept_gain_marked_an_upper_bound():
    from graphtrust.defences import tables

    df = _records({"gcn": [0.0] * 3, "jaccard": [0.02] * 3, "svd": [0.02] * 3})
    meta = df[(df.attack == "adaptive-poisoning") & (df.defence.isin(["gcn", "jaccard"]))].assign(
        attack="meta-poisoning", accuracy=lambda d: d.accuracy - 0.10)  # Meta-PGD ran on GCN and Jaccard only
    df = pd.concat([df, meta], ignore_index=True)
    kept = tables.robustness_kept(df).loc[("poisoning", "10 %")]
    assert kept.loc["Jaccard-GCN", "Meta-PGD cells"] == 3 and kept.loc["SVD-GCN", "Meta-PGD cells"] == 0
    assert kept.loc["SVD-GCN", "kept"] > 1  # beside a GCN that Meta-PGD lowered 10 points more, SVD gains
    ours = tables.claims(df).loc["poisoning", "ours (10 %)"]
    assert "SVD-GCN 2.60 (at most: no Meta-PGD through it)" in ours and "Jaccard-GCN 0.60," in ours


def test_versus_gcn_pairs_cells_and_counts_a_defence_equal_to_gcn():
    from graphtrust.defences import tables

    df = _records({"gcn": [0.0] * 3, "adversarial": [0.0, 0.05, 0.10]})
    same = (df.defence == "adversarial") & (df.split == 0)  # split 0: the defence kept GCN's weights
    df.loc[same, "accuracy"] = df[(df.defence == "gcn") & (df.split == 0)].accuracy.to_numpy()
    t = tables.versus_gcn(df, "adversarial", 0.1).loc["cora_ml"]
    assert t.loc["clean", "equal to GCN"] == 1 and t.loc["clean", "cells"] == 3
    assert t.loc["clean", "difference"] == pytest.approx(10 / 3, abs=0.01)  # 0 on split 0, +5 points on the others
    assert t.loc["adaptive-evasion", "difference"] == pytest.approx(-5 / 3, abs=0.01)  # 0, +5 − 5 and +5 − 10
    assert t.loc["adaptive-evasion", "95 % CI ±"] > 0 and t.loc["transfer-evasion", "equal to GCN"] == 1
    assert tables.versus_gcn(df, "svd", 0.1).empty


def test_warmup_table_means_accuracies_and_takes_median_kept_epochs():
    from graphtrust.defences import tables

    rec = pd.DataFrame([dict(dataset="cora_ml", graph="clean", warmup_rounds=w, split=s, accuracy=0.7 + 0.1 * w,
                             kept_epoch=[5, 6, 90][s] + 20 * w, gcn_accuracy=0.8, gcn_kept_epoch=7)
                        for w in (0, 1) for s in range(3)])
    t = tables.warmup_table(rec).loc[("cora_ml", "clean")]
    assert t.loc[1, "adversarial"] == pytest.approx(80.0) and t.loc[0, "adversarial"] == pytest.approx(70.0)
    assert t.loc[0, "kept_epoch"] == 6 and t.loc[1, "kept_epoch"] == 26  # medians, not pulled up by epoch 90
    assert (t.cells == 3).all() and (t.GCN == 80.0).all()


def test_cell_seconds_splits_cells_by_the_creation_time_of_the_run_that_measured_them():
    from graphtrust.defences import tables

    run = experiment.Run("defences_meta", runs={"old": {"created": "2026-12-05T10:00:00Z"},
                                                 "new": {"created": "2026-12-07T04:00:00Z"}})
    for i, (rid, b, sec, d) in enumerate([("old", 0.25, 2000.0, "gnnguard"), ("new", 0.05, 500.0, "gnnguard"),
                                          ("new", 0.1, 700.0, "gnnguard"), ("new", 0.0, 9.0, "gnnguard"),
                                          ("new", 0.05, 99.0, "rgcn")]):
        run.add({"cell": dict(dataset="cora_ml", split=i, defence=d, budget=b, model_seed=0), "run": rid,
                 "seconds": sec, "records": [{"attack": "meta-poisoning", "accuracy": 0.7}]})
    t = tables.cell_seconds(run, "gnnguard", "2026-12-06T22:19:40Z").loc["cora_ml"]
    assert t.loc["before"].tolist() == ["25 %", 1, 2000.0, 2000.0]
    assert t.loc["after"].tolist() == ["5, 10 %", 2, 500.0, 700.0]  # the clean cell (budget 0) and RGCN left out
    text = tables.cell_seconds_text(tables.cell_seconds(run, "gnnguard", "2026-12-06T22:19:40Z"))
    assert text == "Cora-ML, before: 25 % (1 cell) 2,000 s; Cora-ML, after: 5, 10 % (2 cells) 500–700 s"
    with pytest.raises(ValueError, match="'svd'"):
        tables.cell_seconds(run, "svd", "2026-12-06T22:19:40Z")


def test_tables_that_average_over_cells_refuse_two_datasets_at_once():
    from graphtrust.defences import tables

    df = _records({"gcn": [0.0] * 3, "jaccard": [0.05] * 3})
    both = pd.concat([df, df.assign(dataset="citeseer_npz", accuracy=df.accuracy - 0.2)], ignore_index=True)
    with pytest.raises(ValueError, match="citeseer_npz"):
        tables.robustness_kept(both)
    with pytest.raises(ValueError, match="one dataset"):
        tables.plot_budgets(both)
    one = tables.robustness_kept(both[both.dataset == "citeseer_npz"]).loc[("evasion", "10 %")]
    assert one.loc["Jaccard-GCN", "cells"] == 3  # Citeseer's own cells, not pooled with Cora-ML's


def test_gains_text_and_labels_name_datasets_defences_and_split_counts():
    from graphtrust.defences import tables

    df = _records({"gcn": [0.0] * 3, "jaccard": [0.05] * 3})
    kept = tables.robustness_kept(df).loc[("evasion", "10 %")]
    assert "(3 splits)" in tables.gains_text(kept)
    one = tables.robustness_kept(df[df.split == 0]).loc[("evasion", "10 %")]
    assert "(1 split)" in tables.gains_text(one) and "±" not in tables.gains_text(one)  # no interval from one cell
    assert tables.where("citeseer_npz", "gnnguard") == tables.where("citeseer_npz", "GNNGuard") == "Citeseer, GNNGuard"
    assert tables.where("ogbn-arxiv", "rgcn") == "ogbn-arxiv, RGCN"  # an unknown dataset keeps its key
    assert tables.n_splits(1.0) == "1 split" and tables.n_splits(2) == "2 splits"


def test_keeps_gain_counts_a_gain_only_beyond_its_interval():
    from graphtrust.defences import tables

    # under the strongest attack: Jaccard 0 points over GCN; GNNGuard 3, 5, 4 (mean 4 ± 2.5); RGCN 5, 5, -5
    df = _records({"gcn": [0.0] * 3, "jaccard": [0.05] * 3, "gnnguard": [0.02, -0.02, 0.01], "rgcn": [0.0, 0.0, 0.1]})
    rows = tables.robustness_kept(df).loc[("evasion", "10 %")]
    assert tables.keeps_gain(rows) == ["GNNGuard"]
    one = tables.robustness_kept(df[df.split == 0]).loc[("evasion", "10 %")]
    assert tables.keeps_gain(one) == []  # one cell: no interval, no claim


def test_adversarial_training_keeps_the_best_adversarial_epoch(graph, monkeypatch):
    data, split = graph
    seen = []  # weights at every validation check: none in the warm-up round, every epoch after it

    def scripted(model, d, ei, idx):
        if idx is not split.val:
            return 0.0
        seen.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
        return 0.9 if len(seen) == 3 else 0.1

    monkeypatch.setattr(ev, "accuracy", scripted)
    model, epochs = ev.adversarial_fit(ev.build("adversarial", data), data, split, data.edge_index, rounds=3,
                                       epochs_per_round=4, attack_epochs=2, block_size=2_000)
    assert epochs == 12 and len(seen) == 8  # the 4 warm-up epochs are never candidates; then every epoch is
    kept = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(kept, seen[2]) and not torch.equal(kept, seen[3])  # epoch 7's weights, not round 1's end
    with pytest.raises(ValueError, match="warmup_rounds=2"):
        ev.adversarial_fit(ev.build("adversarial", data), data, split, data.edge_index, rounds=2, warmup_rounds=2)
