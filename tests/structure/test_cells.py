"""The gap attribution's tables from metattack_gaps records (synthetic records, known answers)."""

import pandas as pd
import pytest

from graphtrust.structure.cells import claims, gap_table


def _records(self_inc: dict, true_inc: dict, clean: float, splits=(0,)) -> pd.DataFrame:
    rows = []
    for split in splits:
        for mode in ("ours", "paper", "strong"):
            base = {"dataset": "citeseer_npz", "mode": mode, "split": split, "attack_seed": 0}
            for v in (0, 1):
                rows.append({**base, "attack": "clean", "labels": "-", "victim_seed": v, "error": (clean + split) / 100})
                for labels, inc in (("self", self_inc[mode]), ("true", true_inc[mode])):
                    rows.append({**base, "attack": "meta-self", "labels": labels, "victim_seed": v,
                                 "error": (clean + inc + 2 * split) / 100, "steps": 100 if mode != "strong" else 400,
                                 "surrogate_loss": 0.02, "self_label_accuracy": 0.7,
                                 "flips_touching_wrong_label": 0.4})
    return pd.DataFrame(rows)


def test_gap_table_and_claims_name_the_measured_cause():
    df = _records({"ours": 0.5, "paper": 1.7, "strong": 1.7}, {"ours": 6.9, "paper": 6.5, "strong": 6.5}, 28.5)
    t = gap_table(df)
    assert t.loc[("citeseer_npz", "paper"), "increase"] == pytest.approx(1.7)
    assert t.loc[("citeseer_npz", "ours"), "increase, true labels"] == pytest.approx(6.9)
    assert t.loc[("citeseer_npz", "paper"), "increase std"] == 0.0 and t["cells"].eq(1).all()
    c = claims(df).loc["citeseer_npz"]
    assert c["verdict"].startswith("partly") and "one split" in c["verdict"]  # only the oracle reaches +6.1
    assert "self-training labels" in c["measured causes"] and "40 %" in c["measured causes"]
    assert "clean error" not in c["measured causes"]  # 28.5 is the paper's clean error


def test_spread_over_splits_and_a_reproduced_claim():
    df = _records({"ours": 6.0, "paper": 6.0, "strong": 6.0}, {"ours": 6.0, "paper": 6.0, "strong": 6.0}, 28.5,
                  splits=(0, 1))
    t = gap_table(df)
    # split 1 raises the clean error by 1 and the attacked one by 2: increases 6 and 7
    assert t.loc[("citeseer_npz", "paper"), "increase"] == pytest.approx(6.5)
    assert t.loc[("citeseer_npz", "paper"), "increase std"] == pytest.approx(0.5 ** 0.5)
    assert t.loc[("citeseer_npz", "paper"), "cells"] == 2
    assert claims(df).loc["citeseer_npz", "verdict"] == "reproduced"
