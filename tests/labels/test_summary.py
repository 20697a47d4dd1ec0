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


def test_coverage_lists_pools_budgets_and_trainers():
    rows = {r["victim"]: r for r in summary.coverage(_result())}
    assert rows["gcn"]["pools"] == 2 and rows["gcn"]["budgets"] == "10 %, 20 %"
    assert rows["gat"]["budgets"] == "20 %" and rows["gcn"]["trained"] == "one model at a time: 1 pool; batched: 1 pool"


def test_victim_table_puts_victims_side_by_side():
    rows = summary.victim_table(_result(), "cora_ml")
    assert rows[0] == {"attack": "clean", "gcn": "81.0 ± 1.4", "gat": "79.0 ± 0.0"}
    sgc_bin = next(r for r in rows if r["attack"] == "sgc-bin")
    assert sgc_bin["gcn"].startswith("52.0") and sgc_bin["gat"].startswith("54.0")


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
