import json
import os
import subprocess
import sys

import torch

from graphtrust import config
from graphtrust.structure import experiments
from graphtrust.structure.explorer import summary_at


def _tiny_sizes():
    base = dict(config.sizes("metattack", "quick"))
    base.update(datasets=("polblogs",), budgets=(0.0, 0.001, 0.002), main_budget=0.001, steps=3,
                attacks=("dice", "meta-self"), sweep_attacks=("meta-self",), victim_seeds=(0,),
                sweep_seeds=(0,))
    return config.Sizes("metattack", "test", base)


def test_run_produces_tables_transfer_and_prefixes(tmp_path):
    result = experiments.run(_tiny_sizes(), show_progress=False)
    entry = result.data["datasets"]["polblogs"]
    assert entry["main_flips"] == 16 and entry["budget_flips"] == [0, 16, 33]
    assert len(entry["attacks"]["meta-self"]["flips"]) == 33  # the sweep ran to the largest budget
    assert set(entry["attacks"]["meta-self"]["at_budget"]) == {"0.001", "0.002"}
    assert set(entry["attacks"]["dice"]["at_budget"]) == {"0.001"}
    assert set(entry["transfer"]) == {"clean->clean", "clean->poisoned", "poisoned->clean", "poisoned->poisoned"}
    rows = experiments.misclassification_table(result)
    assert [r["attack"] for r in rows] == ["clean", "dice", "meta-self", "features only (no graph)"]
    path = result.save(tmp_path / "r.json")
    merged = experiments.merge(result, type(result)("metattack", {**result.data, "datasets": {"x": entry}}))
    assert list(merged.data["datasets"]) == ["polblogs", "x"] and len(merged.provenance["runs"]) == 2
    again = type(result).load(path)
    s = summary_at(again, "polblogs", "meta-self", 0.002)
    assert s["flips"] == 33 and "gcn" in s["errors"] and 0 <= s["share_inserted"] <= 1
    assert summary_at(again, "polblogs", "clean", 0.001)["flips"] == 0

    import ipywidgets as w

    from graphtrust.structure.explorer import explorer

    widgets = []
    orig_vbox = w.VBox
    w.VBox = lambda children: widgets.append(children) or orig_vbox(children)
    try:
        explorer({"a": again, "b": again})
    finally:
        w.VBox = orig_vbox
    (run, ds), (atk, bud), _out = widgets[0][0].children, widgets[0][1].children, widgets[0][2]
    assert atk.value == "meta-self" and bud.value == 0.001 and ds.value == "polblogs"
    assert bud.label == "0.1%"  # the slider shows percentages
    bud.value = 0.002
    atk.value = "dice"  # dice was evaluated at the main budget only
    assert bud.options == (("0.1%", 0.001),) and bud.value == 0.001
    atk.value = "clean"
    run.value = "b"
    assert atk.value == "clean"
    # the slider starts at the main budget even when a smaller budget comes first
    later = type(again)("metattack", {**again.data, "main_budget": 0.002})
    widgets.clear()
    w.VBox = lambda children: widgets.append(children) or orig_vbox(children)
    try:
        explorer({"a": later})
    finally:
        w.VBox = orig_vbox
    assert widgets[0][1].children[1].value == 0.002


def test_metattack_benchmark_reports_speed_and_floor():
    # one thread: these check fields, not speed, and the test workers run side by side
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "graphtrust.bench", "metattack", "--threads", "1", "--dataset", "polblogs", "--flips", "2",
         "--steps", "5"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip().splitlines()
    rec = json.loads(out[-1])
    for key in ("seconds_per_flip", "a_meta_self_seconds_per_flip", "peak_rss_mib", "device", "threads",
                "floor_seconds_per_flip", "bandwidth_gbs"):
        assert key in rec
    assert rec["seconds_per_flip"] > 0 and rec["floor_seconds_per_flip"] < rec["seconds_per_flip"]
    assert torch.get_num_threads() >= 1


def test_a_run_in_parts_combines_into_the_whole():
    import pytest

    sz = _tiny_sizes()
    whole = experiments.run(sz, show_progress=False)
    parts = [experiments.run(sz, show_progress=False, attacks=("dice",)),
             experiments.run(sz, show_progress=False, attacks=("meta-self",), clean=False)]
    assert "clean" not in parts[1].data["datasets"]["polblogs"]
    both = experiments.combine(parts)
    a, b = whole.data["datasets"]["polblogs"], both.data["datasets"]["polblogs"]
    assert a["attacks"]["meta-self"]["flips"] == b["attacks"]["meta-self"]["flips"]
    assert a["clean"] == b["clean"] and a["transfer"] == b["transfer"]
    assert experiments.misclassification_table(whole) == experiments.misclassification_table(both)
    with pytest.raises(ValueError, match=r"attacks \['dice'\] are in two parts"):
        experiments.combine([parts[0], parts[0]])
    with pytest.raises(ValueError, match="no clean victims"):
        experiments.combine(parts[::-1])
    with pytest.raises(ValueError, match="not in the test profile"):
        experiments.run(sz, attacks=("nettack",))


def test_gap_cells_record_the_attack_and_its_explanations():
    from graphtrust import config
    from graphtrust.structure.cells import GAPS

    sz = config.sizes("metattack", "quick")
    sz = config.Sizes("metattack", "quick", {**sz, "victim_seeds": (0,), "main_budget": 0.004,
                                             "gaps": dict(datasets=("cora_ml",), modes=("paper", "ours"),
                                                          labels=("self", "true"), splits=(0,),
                                                          attack_seeds=(0,))})
    grid = GAPS.grid(sz)
    assert len(grid) == 2 + 4
    ctx = {"sizes": sz}  # what the harness passes; small sizes keep the test short
    recs = {(c["attack"], c["labels"]): GAPS.measure(dict(c), ctx) for c in grid.only(mode=["paper"]).cells()}
    clean = recs["clean", "-"][0]
    true, selfl = recs["meta-self", "true"][0], recs["meta-self", "self"][0]
    assert set(clean) == {"victim_seed", "error"}
    assert true["self_label_accuracy"] == 1.0 and true["flips_touching_wrong_label"] == 0.0
    assert 0.5 < selfl["self_label_accuracy"] < 1.0
    assert true["steps"] == 100 and true["reinit"] is False and true["flips"] == int(0.004 * 7981)
    assert 0 <= true["error"] <= 1
