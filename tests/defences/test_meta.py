"""Meta-PGD: the unrolled training is Adam, its meta-gradient is the derivative of the trained
model, and the attack poisons within its budget what the defender trains on."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import scatter

from graphtrust import config, datasets, experiment
from graphtrust.defences import (
    NOT_UNROLLED,
    UnrolledTraining,
    accuracy,
    build,
    cells,
    meta_pgd,
    tables,
    train,
)
from graphtrust.defences.cells import META, META_TRANSFER
from graphtrust.defences.models import GNNGuard, pair_similarity
from graphtrust.splits import stratified_split


@pytest.fixture(scope="module")
def graph():
    data = datasets.sbm_graph(num_nodes=200, num_classes=3, avg_degree=6.0, homophily=0.85, num_features=24,
                              feature_signal=0.6, seed=2)
    data.x = (data.x > 0.5).float()
    return data, stratified_split(data.y, 0.1, 0.1, seed=0)


@pytest.mark.parametrize("name", ["gcn", "rgcn"])
def test_unrolled_training_is_torch_adam_in_eval_mode(graph, name):
    data, split = graph
    torch.manual_seed(0)
    x = data.x.double()  # float64: RGCN's float32 rounding alone drifts by 1e-2 over 15 steps
    model = build(name, data).double().eval()
    unrolled = UnrolledTraining(model, data.y, split.train, steps=15, lr=0.01, weight_decay=5e-4)
    ours = unrolled(x, data.edge_index, torch.ones(data.edge_index.size(1), dtype=torch.float64))
    ref = build(name, data).double().eval()
    ref.load_state_dict({k: v for k, v in unrolled.theta0.items()}, strict=False)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01, weight_decay=5e-4)
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(ref(x, data.edge_index)[split.train], data.y[split.train])
        reg = getattr(ref, "regularization", None)
        (loss + reg() if callable(reg) else loss).backward()
        opt.step()
    with torch.no_grad():
        expected = ref(x, data.edge_index)
    assert not ours.requires_grad
    # Adam divides each step by the root of its second moment, so the last-bit differences of
    # summing in another order grow over 15 steps: 1.0e-7 for RGCN on an Intel Xeon, below
    # 1e-7 on AMD EPYC. A wrong update moves it far more: no weight decay or β₂ = 0.99, 5e-3 to 5e-2.
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0), (ours - expected).abs().max()


def test_meta_gradient_matches_finite_differences(graph):
    data, split = graph
    torch.manual_seed(1)
    model = build("gcn", data).double().eval()
    x = data.x.double()
    unrolled = UnrolledTraining(model, data.y, split.train, steps=5, lr=0.05)
    target = split.unlabelled[:40]

    def loss(w):
        return F.cross_entropy(unrolled(x, data.edge_index, w)[target], data.y[target])

    w = torch.ones(data.edge_index.size(1), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(loss(w), w)
    assert g.abs().max() > 0
    for e in torch.topk(g.abs(), 3).indices.tolist():  # the edges that matter most
        h = 1e-5
        up, down = w.detach().clone(), w.detach().clone()
        up[e] += h
        down[e] -= h
        with torch.no_grad():
            fd = (loss(up) - loss(down)) / (2 * h)
        assert float(fd) == pytest.approx(float(g[e]), rel=1e-4, abs=1e-9)


class _GNNGuardAllEdges(GNNGuard):
    """GNNGuard keeping every edge, the pruned ones at weight 0 (before the pruned were dropped)."""

    def edge_weights(self, h, edge_index, w, first):
        src, dst = edge_index
        z = F.normalize(h, dim=1)  # the second layer's; the first reads the cached feature cosines
        sim = pair_similarity(h, "cosine")[src, dst] if first else (z[src] * z[dst]).sum(1)
        sim = torch.where((sim >= self.threshold) & (src != dst), sim, torch.zeros_like(sim)) * w
        att = sim / scatter(sim, dst, dim=0, dim_size=h.size(0), reduce="sum")[dst].clamp_min(1e-12)
        kept = scatter((att > 0).to(h.dtype), dst, dim=0, dim_size=h.size(0), reduce="sum")
        loops = torch.arange(h.size(0)).repeat(2, 1)
        return gcn_norm(torch.cat([edge_index, loops], 1), torch.cat([att, 1 / (1 + kept)]), h.size(0),
                        add_self_loops=False)


@pytest.mark.usefixtures("one_thread")
def test_gnnguard_drops_pruned_edges_without_changing_a_bit_of_its_training_or_meta_gradient(graph):
    # on one thread (as the full runs) the sums run in edge order, so adding exact zeros is a no-op; with
    # more, a parallel scatter splits the edges into chunks by count, and the last bits differ (1e-9)
    data, split = graph
    n_pairs = 600  # a PR-BCD-like block of candidate pairs, most of them below the cosine cut
    block = torch.randint(0, data.num_nodes, (2, n_pairs), generator=torch.Generator().manual_seed(0))
    ei = torch.cat([data.edge_index, block, block.flip(0)], 1)
    runs = []
    for cls in (GNNGuard, _GNNGuardAllEdges):
        torch.manual_seed(3)
        model = cls(data.num_features, int(data.y.max()) + 1, threshold=0.5).eval()  # 16 % of pairs pass
        w = torch.cat([torch.ones(data.edge_index.size(1)), torch.linspace(0.01, 0.9, 2 * n_pairs)]).requires_grad_()
        out = UnrolledTraining(model, data.y, split.train, steps=6, lr=0.05)(data.x, ei, w)
        (g,) = torch.autograd.grad(F.cross_entropy(out[split.test], data.y[split.test]), w)
        runs.append((out.detach(), g, model.edge_weights(data.x, ei, w, first=True)[0].size(1)))
    (o1, g1, e1), (o2, g2, e2) = runs
    assert e1 < e2 - n_pairs  # most candidate pairs were dropped, not propagated at weight 0
    assert torch.equal(o1, o2) and torch.equal(g1, g2) and g1[-2 * n_pairs:].abs().max() > 0


def test_meta_pgd_poisons_within_budget_and_refuses_what_it_cannot_unroll(graph):
    data, split = graph
    clean = train("gcn", data, split, seed=0, epochs=150, patience=30)
    before = accuracy(clean.model, data, data.edge_index, split.test)
    ei, flips, seconds = meta_pgd("gcn", data, split, 0.25, clean.model, steps=20, epochs=8, resample=6,
                                  block_size=4_000, final_samples=3)
    assert 0 < flips.size(1) <= int(0.25 * data.edge_index.size(1) // 2) and seconds > 0
    poisoned = train("gcn", data, split, seed=0, edge_index=ei, epochs=150, patience=30)
    after = accuracy(poisoned.model, data, ei, split.test)
    assert after < before - 0.03, (before, after)
    for name in NOT_UNROLLED:
        with pytest.raises(ValueError, match=f"defence '{name}' cannot be unrolled"):
            meta_pgd(name, data, split, 0.1, clean.model)
    # a meta-gradient that is not finite is refused loudly, not passed on to PR-BCD as NaN
    unrolled = UnrolledTraining(build("gcn", data), data.y, split.train, steps=2)
    w = torch.ones(data.edge_index.size(1), requires_grad=True)
    out = unrolled(data.x, data.edge_index, w)
    with pytest.raises(FloatingPointError, match="not finite"):
        torch.autograd.grad((out * float("nan")).sum(), w)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        UnrolledTraining(build("gcn", data), data.y, split.train, steps=0)


def test_meta_cell_and_tables(graph):
    data, split = graph
    sz = META.sizes()
    meta = {**sz.meta, "block_size_by_defence": {"jaccard": 3_000}}  # a block of its own for this defence
    ctx = {"dataset": "sbm", "data": data, "splits": {0: split}, "clean": {}, "gcn_attack": {},
           "sizes": config.Sizes("defences", sz.profile, {**sz, "meta": meta})}
    grid = experiment.Grid.product(dataset=["sbm"], split=[0], defence=["jaccard"], budget=[0.1], model_seed=[0])
    df = experiment.run(META, grid=grid, context=ctx, show_progress=False).records
    assert list(df.attack) == ["meta-poisoning"] and df.accuracy.between(0, 1).all() and (df.flips > 0).all()
    assert list(df.block_size) == [3_000]
    # Meta-PGD counts as the adaptive poisoning attack where it is stronger, and only in its cells
    rows = [dict(dataset="d", split=s, model_seed=0, defence=n, budget=b, attack=a, accuracy=v)
            for s in range(2) for n in ("gcn", "jaccard")
            for b, a, v in ((0.0, "clean", 0.9), (0.1, "transfer-poisoning", 0.7), (0.1, "adaptive-poisoning", 0.8),
                            (0.1, "transfer-evasion", 0.7), (0.1, "adaptive-evasion", 0.6))]
    rows.append(dict(dataset="d", split=0, model_seed=0, defence="jaccard", budget=0.1, attack="meta-poisoning",
                     accuracy=0.5))
    s = tables.strongest(pd.DataFrame(rows)).query("threat == 'poisoning' and defence == 'jaccard'").set_index("split")
    assert s.loc[0, "adaptive"] == pytest.approx(50) and s.loc[1, "adaptive"] == pytest.approx(80)
    assert s.loc[0, "meta"] and not s.loc[1, "meta"]
    t = tables.meta_table(pd.DataFrame(rows))
    assert len(t) == 1 and t["Meta-PGD − transfer"].iloc[0] == pytest.approx(-20)


def test_meta_transfer_cells_reuse_the_gcn_meta_graph_and_count_only_towards_the_strongest_attack(graph, monkeypatch):
    data, split = graph
    shared: dict = {}  # one Meta-PGD graph per split, budget and seed, for both experiments
    ctx = {"dataset": "sbm", "data": data, "splits": {0: split}, "clean": {}, "gcn_attack": {}, "meta_graphs": shared}
    one = dict(dataset=["sbm"], split=[0], budget=[0.1], model_seed=[0])
    direct = experiment.run(META, grid=experiment.Grid.product(defence=["gcn"], **one), context=ctx,
                            show_progress=False).records
    assert len(shared) == 1
    calls = []
    monkeypatch.setattr(cells, "meta_pgd", lambda *a, **k: calls.append(a))
    df = experiment.run(META_TRANSFER, grid=experiment.Grid.product(defence=["gcn", "jaccard"], **one),
                        context=ctx, show_progress=False).records
    assert not calls and len(shared) == 1  # the GCN cell's graph, not a second attack
    assert set(df.attack) == {"meta-transfer-poisoning"} and (df.flips == direct.flips.iloc[0]).all()
    gcn = df.set_index("defence").accuracy["gcn"]
    assert gcn == pytest.approx(direct.accuracy.iloc[0])  # the same graph and seed train the same GCN
    # in the tables: towards the strongest attack, not the adaptive one nor the apparent gain
    rows = [dict(dataset="d", split=0, model_seed=0, defence=n, budget=b, attack=a, accuracy=v)
            for n in ("gcn", "svd") for b, a, v in ((0.0, "clean", 0.9), (0.1, "transfer-poisoning", 0.7),
                                                    (0.1, "adaptive-poisoning", 0.8), (0.1, "transfer-evasion", 0.7),
                                                    (0.1, "adaptive-evasion", 0.6))]
    rows += [dict(dataset="d", split=0, model_seed=0, defence=n, budget=0.1, attack="meta-transfer-poisoning",
                  accuracy=v) for n, v in (("gcn", 0.5), ("svd", 0.6))]
    s = tables.strongest(pd.DataFrame(rows)).query("threat == 'poisoning'").set_index("defence")
    assert s.loc["svd", "adaptive"] == pytest.approx(80) and s.loc["svd", "strongest"] == pytest.approx(60)
    assert s.loc["svd", "meta_transfer"] and not s.loc["svd", "meta"]
    kept = tables.robustness_kept(pd.DataFrame(rows)).loc[("poisoning", "10 %", "SVD-GCN")]
    assert kept["apparent gain"] == pytest.approx(0) and kept["gain under the strongest attack"] == pytest.approx(10)
    t = tables.meta_transfer_table(pd.DataFrame(rows))
    assert t.loc[("d", "SVD-GCN", "10 %"), "from GCN − Meta-Self"] == pytest.approx(-10)
    assert pd.isna(t.loc[("d", "SVD-GCN", "10 %"), "Meta-PGD (own)"])
