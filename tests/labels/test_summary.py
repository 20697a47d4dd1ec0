import pandas as pd
import pytest

from graphtrust.labels import summary


def _records():
    """``label_attacks`` records: GCN on pools 0, 1 at 10 and 20 %, GAT on pools 3, 4 at 20 %."""
    acc = {"random": 0.70, "lafak": 0.60, "sgc": 0.58, "sgc-bin": 0.52, "ntk": 0.61, "ntk-bin": 0.59}
    cells = [("gcn", "clean", 0.0, [0.8, 0.82]), ("gat", "clean", 0.0, [0.79, 0.79])]
    for a, v in acc.items():
        cells += [("gcn", a, 0.2, [v - 0.01, v + 0.01]), ("gcn", a, 0.1, [v + 0.05] * 2),
                  ("gat", a, 0.2, [v + 0.02] * 2)]  # GAT: main budget only
    pools = {"gcn": [0, 1], "gat": [3, 4]}
    return pd.DataFrame([{"dataset": "cora_ml", "victim": victim, "attack": attack, "budget": b, "split": s,
                          "accuracy": x} for victim, attack, b, values in cells
                         for s, x in zip(pools[victim], values)])


def test_coverage_lists_pools_budgets_and_cells():
    rec = _records().assign(_seconds=1800.0)
    cov = summary.coverage(rec)
    gcn, gat = cov.loc[("cora_ml", "gcn")], cov.loc[("cora_ml", "gat")]
    assert gcn.pools == 2 and gcn.budgets == "10 %, 20 %" and gcn.attacks == 6 and gcn.cells == 2 + 6 * 2 * 2
    assert gat.budgets == "20 %" and gat.clean and gat.hours == pytest.approx(0.5 * (2 + 12))
    assert summary.budget_label(rec) == "GCN at 10, 20 %; GAT at 20 %"
    assert summary.full_sweep(rec, "cora_ml", "gcn") and not summary.full_sweep(rec, "cora_ml", "gat")  # one budget
    cut = rec[~((rec.victim == "gcn") & (rec.attack == "sgc") & (rec.split == 1) & (rec.budget == 0.1))]
    assert not summary.full_sweep(cut, "cora_ml", "gcn")


def test_claims_compare_attacks_on_the_pools_they_share():
    rec = _records()
    cut = rec[~((rec.attack == "sgc-bin") & (rec.split == 1))]  # a run stopped before sgc-bin's second pool
    kept = summary.common_pools(cut[cut.attack != "clean"])
    gcn20 = kept[(kept.victim == "gcn") & (kept.budget == 0.2)]
    assert set(gcn20.split) == {0} and gcn20.attack.nunique() == 6
    c = summary.claims(cut)
    cell = next(x for x in c["cells"] if x["victim"] == "gcn" and x["budget"] == 0.2)
    assert cell["new"] == pytest.approx(51.0) and cell["previous"] == pytest.approx(59.0)  # split 0 only



def test_budget_curves_and_explorer_read_records():
    import matplotlib

    matplotlib.use("Agg")
    from graphtrust.labels.explorer import budget_curves, explorer

    rec = _records()
    ax = budget_curves(rec, "cora_ml", "gcn", ["random", "sgc-bin", "absent"])
    assert len(ax.lines) >= 1 and "2 pools" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["clean", "random", "sgc-bin"]
    explorer({"a": rec, "b": rec[rec.victim == "gat"]})  # builds the widgets and renders once


def test_claims_measure_the_gap_to_the_previous_best_and_the_bin_gain():
    c = summary.claims(_records())
    assert c["num_cells"] == 3  # gcn at two budgets, gat at one
    cell = next(x for x in c["cells"] if x["victim"] == "gcn" and x["budget"] == 0.2)
    assert (cell["previous best"], cell["new best"]) == ("lafak", "sgc-bin")
    assert cell["gap"] == pytest.approx(8.0) and c["max_gap"] == pytest.approx(8.0)
    # per cell: sgc 58 vs 52 (+6), ntk 61 vs 59 (+2): BIN stronger in every cell
    assert c["mean_bin_gain"] == pytest.approx(4.0) and c["bin_wins"] == c["num_bin"] == 6
    assert c["rank"][0][0] == "sgc-bin" and c["rank"][-1][0] == "random"
    empty = _records().iloc[:0]
    assert summary.claims(empty)["cells"] == []


def test_bin_claim_counts_a_tie_with_the_first_attack_only_within_its_interval():
    rec = _records()
    gap = {("gcn", 0.2): 0.010, ("gcn", 0.1): -0.012, ("gat", 0.2): 0.005}  # sgc-bin − lafak per cell
    bin_acc = rec[rec.attack == "sgc-bin"].set_index(["victim", "budget", "split"]).accuracy
    for (victim, b), d in gap.items():
        rows = (rec.attack == "lafak") & (rec.victim == victim) & (rec.budget == b)
        rec.loc[rows, "accuracy"] = [bin_acc[(victim, b, s)] - d for s in rec.loc[rows, "split"]]
    c = summary.claims(rec)
    assert c["rank"][0][0] == "lafak" and c["best_bin"] == "sgc-bin"
    low, high = (float(v) for v in c["bin_vs_top_ci"].strip("[]").split(","))
    assert low < 0 < high  # 0.1 points behind over three cells: not a ranking
    row = summary.claims_table(rec.iloc[:0].assign(protocol=[]), rec).set_index("key").loc["bin"]
    assert row.verdict == "reproduced" and "paired 95 % CI" in row.ours
    far = rec.assign(accuracy=rec.accuracy.where(rec.attack != "lafak", rec.accuracy - 0.05))  # lafak 5 pts stronger
    row = summary.claims_table(rec.iloc[:0].assign(protocol=[]), far).set_index("key").loc["bin"]
    assert row.verdict == "partly"


def test_protocol_readings_by_hand():
    rows = []
    for split in (0, 1):  # flawed: drop 30 pts; corrected: drop 20 pts; corrected-large has no attack row
        rows += [("d", "flawed", "clean", split, 0.8), ("d", "flawed", "x", split, 0.5),
                 ("d", "corrected", "clean", split, 0.8), ("d", "corrected", "x", split, 0.6),
                 ("d", "corrected-large", "clean", split, 0.9)]
    df = pd.DataFrame(rows, columns=["dataset", "protocol", "attack", "split", "accuracy"])
    r = summary.protocol_readings(df)
    assert list(r.index) == ["corrected"] and r.loc["corrected", "rows"] == 1
    assert r.loc["corrected", "accuracy gap (pts)"] == pytest.approx(10.0)
    assert r.loc["corrected", "accuracy gap (% of corrected)"] == pytest.approx(16.7)
    assert r.loc["corrected", "drop gap (pts)"] == pytest.approx(10.0)
    assert r.loc["corrected", "drop gap (% of corrected drop)"] == pytest.approx(50.0)
