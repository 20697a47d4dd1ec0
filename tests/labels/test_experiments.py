import pytest

from graphtrust import config, datasets
from graphtrust.labels import bin_pair
from graphtrust.labels.experiments import ATTACKS, Attacker, cost, representations
from graphtrust.labels.protocol import corrected_protocol


@pytest.fixture(scope="module")
def data():
    return datasets.load("sbm", num_nodes=300, num_classes=3, avg_degree=6, homophily=0.85,
                         num_features=20, feature_signal=0.6, seed=2)


def test_attacker_caches_labels_and_respects_budgets(data):
    split = corrected_protocol(pool_size=40).draw(data.y, 0)
    att = Attacker(data)
    for name in (*ATTACKS, "sgc-bin:pseudo"):
        res = att.attack(name, 0.2, split.train, split.test)
        changed = (res.labels != data.y).nonzero().view(-1)
        assert changed.numel() <= 8 and set(changed.tolist()) <= set(split.train.tolist()), name
        if not name.startswith(("mg", "meta")):
            assert changed.numel() == 8, name
    again = att.attack("sgc-bin", 0.2, split.train, split.test)
    assert again is att.attack("sgc-bin", 0.2, split.train, split.test)
    assert len(att.seconds["sgc-bin"]) == 1  # computed once
    with pytest.raises(KeyError):
        att.attack("nope", 0.2, split.train, split.test)


def test_representations_project_both_runs_on_one_basis(data):
    split = corrected_protocol(pool_size=40).draw(data.y, 0)
    poisoned = Attacker(data).attack("sgc-bin", 0.3, split.train, split.test).labels
    rep = representations(data, split, poisoned, epochs=60)
    assert len(rep["clean_2d"]) == split.test.numel() == len(rep["poisoned_2d"])
    assert 0.0 <= rep["poisoned_probe"] <= 1.0 and rep["clean_accuracy"] > rep["poisoned_accuracy"]


def test_main_table_on_the_harness_runs_in_parts_and_resumes(data, monkeypatch, tmp_path):
    from graphtrust import experiment
    from graphtrust.labels import summary
    from graphtrust.labels.cells import ATTACK_CELLS

    monkeypatch.setattr(datasets, "load", lambda name, **kw: data)
    sz = config.Sizes("label_poisoning", "quick", {
        **config.sizes("label_poisoning", "quick"), "pool_size": {"cora_ml": 30}, "budgets": (0.1, 0.2),
        "attacks": ("random", "sgc-bin"), "victims": ("gcn", "mlp"), "sweep_victims": ("gcn",), "splits": (0, 1),
        "epochs": 30, "patience": 10})
    grid = ATTACK_CELLS.grid(sz)
    # clean per victim and pool; GCN (sweep) at both budgets, MLP at the main budget only
    assert len(grid) == 2 * 2 + 2 * 2 * 2 + 2 * 1 * 2
    monkeypatch.setattr(ATTACK_CELLS, "sizes", lambda profile=None: sz)
    out = tmp_path / "att.jsonl"
    part = experiment.run(ATTACK_CELLS, out=out, only={"victim": ["mlp"]}, show_progress=False)
    assert len(part.records) == 2 + 2 * 2
    whole = experiment.run(ATTACK_CELLS, out=out, show_progress=False)  # resumes: the GCN cells only
    assert whole.complete(grid) and len(experiment.load(out).records) == len(grid)
    rec = whole.records
    assert set(rec[rec.victim == "mlp"].budget) == {0.0, 0.2} and set(rec[rec.victim == "gcn"].budget) == {0.0, 0.1, 0.2}
    att = rec[rec.attack != "clean"]
    assert (att.flips >= 1).all() and (att[att.attack == "sgc-bin"].pair != "").all()
    assert rec.accuracy.between(0, 1).all()
    cov = summary.coverage(rec)
    assert cov.loc[("cora_ml", "gcn"), "budgets"] == "10 %, 20 %" and cov.loc[("cora_ml", "mlp"), "pools"] == 2
    secs = cost(data, 0.2, 30, attacks=("random", "sgc-bin"))
    assert set(secs) == {"random", "sgc-bin"} and all(v >= 0 for v in secs.values())


def test_pitfall_experiment_on_the_harness(data, monkeypatch, tmp_path):
    from graphtrust import experiment
    from graphtrust.labels import summary
    from graphtrust.labels.cells import PITFALLS, STEPS

    monkeypatch.setattr(datasets, "load", lambda name, **kw: data)
    sz = config.Sizes("label_poisoning", "quick", {
        **config.sizes("label_poisoning", "quick"), "pool_size": {"cora_ml": 30}, "validation": 60,
        "pitfall_attacks": ("lafak", "sgc-bin"), "pitfall_splits": (0, 1), "pitfall_large_pool": {"cora_ml": 40},
        "epochs": 30, "patience": 10, "tuned": {"folds": 2, "trials": 3, "epochs": 20, "window": 5},
        "pitfall_tuned_attacks": ("clean", "lafak"), "pitfall_tuned_splits": (0,)})
    grid = PITFALLS.grid(sz)
    assert len(grid) == 1 * (len(STEPS) - 1) * 3 * 2 + 2  # the tuned defender: two cells
    monkeypatch.setattr(PITFALLS, "sizes", lambda profile=None: sz)
    out = tmp_path / "pit.jsonl"
    part = experiment.run(PITFALLS, out=out, only={"protocol": ["flawed", "corrected"]}, show_progress=False)
    assert len(part.missing(grid)) == len(grid) - 12
    whole = experiment.run(PITFALLS, out=out, show_progress=False)  # resumes: measures the rest only
    assert whole.complete(grid) and len(experiment.load(out).records) == len(grid)
    df = whole.records
    att = df[df.attack != "clean"]
    exact = att[att.attack == "sgc-bin"]
    assert (att.flips <= att.budget).all() and (exact.flips == exact.budget).all()
    assert set(att.pair) == {",".join(map(str, bin_pair(data.y)))}
    eff = summary.protocol_effect(df)
    assert set(eff.attack) == {"lafak", "sgc-bin"} and "95 % CI" in eff
    tuned = df[df.protocol == "corrected-tuned"]
    assert len(tuned) == 2 and all(set(eval(c)) == {"lr", "weight_decay", "dropout"} for c in tuned.chosen)

