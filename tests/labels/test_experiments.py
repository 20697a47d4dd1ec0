import pytest
import torch

from graphtrust import config, datasets
from graphtrust.labels import bin_pair
from graphtrust.labels.experiments import (
    ATTACKS,
    Attacker,
    accuracy_table,
    complete,
    merge,
    representations,
    run,
)
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


def test_tiny_run_is_complete_and_mergeable(data, monkeypatch):
    monkeypatch.setattr(datasets, "load", lambda name, **kw: data)
    sz = config.Sizes("label_poisoning", "quick", {
        **config.sizes("label_poisoning", "quick"), "pool_size": {"cora_ml": 30}, "budgets": (0.2,),
        "attacks": ("random", "sgc-bin"), "splits": (0,), "pitfall_splits": (0,), "validation": 60,
        "epochs": 30, "patience": 10})
    r = run(sz, show_progress=False)
    e = r.data["datasets"]["cora_ml"]
    assert "pitfalls" not in e  # the pitfall rows are the label_pitfalls experiment (labels.cells)
    assert set(e["attacks"]) == {"random", "sgc-bin"} and len(e["attacks"]["sgc-bin"]["0.2"]["gcn"]) == 1
    assert set(e["cost"]) == set(ATTACKS)
    rows = accuracy_table(r, "cora_ml")
    assert rows[0]["attack"] == "clean" and "20 %" in rows[1]
    r2 = run(config.Sizes("label_poisoning", "quick", {**sz, "victims": ("mlp",)}), show_progress=False)
    m = merge(r, r2)
    assert set(m.data["victims"]) == {"gcn", "mlp"}
    assert set(m.data["datasets"]["cora_ml"]["attacks"]["random"]["0.2"]) == {"gcn", "mlp"}
    assert len(m.provenance["runs"]) == 2
    with pytest.raises(ValueError, match="in both runs"):
        merge(r, r)  # the same splits twice
    # a part that adds a budget to a finished sweep (same splits): new cells, clean re-run must agree
    r4 = run(config.Sizes("label_poisoning", "quick", {**sz, "victims": ("mlp",), "sweep_victims": ("gcn", "mlp"),
                                                       "budgets": (0.1,)}), show_progress=False)
    m4 = merge(m, r4)
    e4 = m4.data["datasets"]["cora_ml"]
    assert e4["attacks"]["sgc-bin"]["0.1"] == {"mlp": r4.data["datasets"]["cora_ml"]["attacks"]["sgc-bin"]["0.1"]["mlp"]}
    assert e4["attacks"]["sgc-bin"]["0.2"] == m.data["datasets"]["cora_ml"]["attacks"]["sgc-bin"]["0.2"]
    assert e4["splits"]["mlp"] == [0] and "mlp/sgc-bin/0.1" in e4["chosen"] and m4.data["budgets"] == [0.1, 0.2]
    with pytest.raises(ValueError, match="in both runs"):
        merge(m4, r4)
    r4.data["datasets"]["cora_ml"]["clean"]["mlp"] = [0.0]
    with pytest.raises(ValueError, match="different clean accuracies"):
        merge(m, r4)
    swept = config.Sizes("label_poisoning", "quick", {**sz, "victims": ("mlp",), "sweep_victims": ("mlp",),
                                                      "budgets": (0.1, 0.2), "datasets": ("cora_ml",)})
    assert complete(m, swept) is False and complete(m4, swept)  # the sweep needs every budget
    r3 = run(config.Sizes("label_poisoning", "quick", {**sz, "splits": (1,), "pitfall_splits": (1,),
                                                       "budgets": (0.1, 0.2)}), show_progress=False)
    m3 = merge(r, r3)  # a new split extends every cell and the record of splits
    e3 = m3.data["datasets"]["cora_ml"]
    assert e3["attacks"]["sgc-bin"]["0.2"]["gcn"] == e["attacks"]["sgc-bin"]["0.2"]["gcn"] + \
        r3.data["datasets"]["cora_ml"]["attacks"]["sgc-bin"]["0.2"]["gcn"]
    assert e3["splits"]["gcn"] == [0, 1]
    assert len(e3["chosen"]["gcn/clean/0.0"]) == 2 and m3.data["splits"] == [0, 1]
    assert m3.data["budgets"] == [0.1, 0.2] and len(e3["attacks"]["random"]["0.1"]["gcn"]) == 1  # a budget only r3 ran
    assert set(e3["budget_flips"]) == {"0.1", "0.2"}
    two = config.Sizes("label_poisoning", "quick", {**sz, "splits": (0, 1), "pitfall_splits": (0, 1)})
    assert complete(r, two) is False and complete(m3, two)
    assert torch.isfinite(torch.tensor(e["clean"]["gcn"])).all()


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


def test_saved_full_run_converts_to_records_with_the_same_tables():
    from pathlib import Path

    from graphtrust.labels import summary
    from graphtrust.results import Result, mean_std

    path = Path(__file__).parents[2] / "book" / "results" / "label_poisoning_full.json"
    old = Result.load(path)
    rec = summary.records(old)
    checked = 0
    for name, entry in old.data["datasets"].items():
        for victim in entry["clean"]:
            table = mean_std(rec[(rec.dataset == name) & (rec.victim == victim)], "attack", "budget", "accuracy")
            for row in accuracy_table(old, name, victim):
                for col, text in row.items():
                    if col == "attack" or not text:
                        continue
                    budget = 0.0 if row["attack"] == "clean" else float(col.rstrip(" %")) / 100
                    assert table.loc[row["attack"], budget] == text, (name, victim, row["attack"], col)
                    checked += 1
    assert checked >= 376  # every cell of the saved chapter tables (two datasets, four victims)
