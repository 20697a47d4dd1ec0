import pytest

from graphtrust.labels import summary
from graphtrust.results import Result


def _result():
    acc = {"random": 0.70, "lafak": 0.60, "sgc": 0.58, "sgc-bin": 0.52, "ntk": 0.61, "ntk-bin": 0.59}
    attacks = {a: {"0.2": {"gcn": [v - 0.01, v + 0.01]}, "0.1": {"gcn": [v + 0.05] * 2}} for a, v in acc.items()}
    for a, v in acc.items():
        attacks[a]["0.2"]["gat"] = [v + 0.02, v + 0.02]  # GAT: main budget only
    entry = {"clean": {"gcn": [0.8, 0.82], "gat": [0.79, 0.79]}, "attacks": attacks,
             "splits": {"gcn": [0, 1], "gat": [3, 4]},
             "trainer": {"gcn": ["one model at a time", "batched"], "gat": ["batched"] * 2}}
    return Result("label_poisoning", {"budgets": [0.1, 0.2], "main_budget": 0.2, "splits": [0, 1, 3, 4],
                                      "datasets": {"cora_ml": entry}})


def test_coverage_lists_pools_budgets_and_cells():
    rec = summary.records(_result()).assign(_seconds=1800.0)
    cov = summary.coverage(rec)
    gcn, gat = cov.loc[("cora_ml", "gcn")], cov.loc[("cora_ml", "gat")]
    assert gcn.pools == 2 and gcn.budgets == "10 %, 20 %" and gcn.attacks == 6 and gcn.cells == 2 + 6 * 2 * 2
    assert gat.budgets == "20 %" and gat.clean and gat.hours == pytest.approx(0.5 * (2 + 12))
    assert summary.budget_label(rec) == "GCN at 10, 20 %; GAT at 20 %"
    assert summary.full_sweep(rec, "cora_ml", "gcn") and not summary.full_sweep(rec, "cora_ml", "gat")  # one budget
    cut = rec[~((rec.victim == "gcn") & (rec.attack == "sgc") & (rec.split == 1) & (rec.budget == 0.1))]
    assert not summary.full_sweep(cut, "cora_ml", "gcn")


def test_claims_compare_attacks_on_the_pools_they_share():
    rec = summary.records(_result())
    cut = rec[~((rec.attack == "sgc-bin") & (rec.split == 1))]  # a run stopped before sgc-bin's second pool
    kept = summary.common_pools(cut[cut.attack != "clean"])
    gcn20 = kept[(kept.victim == "gcn") & (kept.budget == 0.2)]
    assert set(gcn20.split) == {0} and gcn20.attack.nunique() == 6
    c = summary.claims(cut)
    cell = next(x for x in c["cells"] if x["victim"] == "gcn" and x["budget"] == 0.2)
    assert cell["new"] == pytest.approx(51.0) and cell["previous"] == pytest.approx(59.0)  # split 0 only


def test_not_rerun_keeps_only_what_the_new_run_lacks():
    old = summary.records(_result())
    new = old[(old.victim == "gcn") & (old.budget.isin([0.0, 0.2]))].assign(accuracy=0.0)
    left = summary.not_rerun(old, new)
    assert set(zip(left.victim, left.budget)) == {("gcn", 0.1), ("gat", 0.0), ("gat", 0.2)}
    assert summary.not_rerun(old, None) is old and len(summary.not_rerun(old, old)) == 0


def test_budget_curves_and_explorer_read_records():
    import matplotlib

    matplotlib.use("Agg")
    from graphtrust.labels.explorer import budget_curves, explorer

    rec = summary.records(_result())
    ax = budget_curves(rec, "cora_ml", "gcn", ["random", "sgc-bin", "absent"])
    assert len(ax.lines) >= 1 and "2 pools" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["clean", "random", "sgc-bin"]
    explorer({"a": rec, "b": rec[rec.victim == "gat"]})  # builds the widgets and renders once


def test_claims_measure_the_gap_to_the_previous_best_and_the_bin_gain():
    c = summary.claims(summary.records(_result()))
    assert c["num_cells"] == 3  # gcn at two budgets, gat at one
    cell = next(x for x in c["cells"] if x["victim"] == "gcn" and x["budget"] == 0.2)
    assert (cell["previous best"], cell["new best"]) == ("lafak", "sgc-bin")
    assert cell["gap"] == pytest.approx(8.0) and c["max_gap"] == pytest.approx(8.0)
    # per cell: sgc 58 vs 52 (+6), ntk 61 vs 59 (+2): BIN stronger in every cell
    assert c["mean_bin_gain"] == pytest.approx(4.0) and c["bin_wins"] == c["num_bin"] == 6
    assert c["rank"][0][0] == "sgc-bin" and c["rank"][-1][0] == "random"
    empty = summary.records(_result()).iloc[:0]
    assert summary.claims(empty)["cells"] == []
