import json
import os
import subprocess
import sys

import pandas as pd
import torch

from graphtrust import config
from graphtrust.structure.explorer import summary_at


def _tiny_sizes():
    base = dict(config.sizes("metattack", "quick"))
    base.update(datasets=("polblogs",), budgets=(0.0, 0.001, 0.002), main_budget=0.001, steps=3,
                attacks=("dice", "meta-self"), sweep_attacks=("meta-self",), victim_seeds=(0,),
                sweep_seeds=(0,))
    return config.Sizes("metattack", "test", base)


def test_main_experiment_records_tables_transfer_and_prefixes(tmp_path):
    from graphtrust import experiment
    from graphtrust.structure import tables
    from graphtrust.structure.cells import MAIN

    sz = _tiny_sizes()
    grid = MAIN.grid(sz)
    assert [c["attack"] for c in grid.cells()] == ["clean", "dice", "meta-self"]
    run = experiment.run(MAIN, grid=grid, out=tmp_path / "mt.jsonl", show_progress=False, context={"sizes": sz})
    df = run.records
    v = tables.victims(df)
    assert sorted(v[v.attack == "meta-self"].flips.unique()) == [16, 33]  # the sweep ran to the largest budget
    assert sorted(v[v.attack == "dice"].budget.unique()) == [0.001]  # not in the sweep: main budget only
    assert set(v[v.attack == "clean"].victim) == {"gcn", "features"}
    atk = df[(df["kind"] == "attack") & (df.attack == "meta-self")].iloc[0]
    assert len(atk.pairs) == 33 and len(atk.surrogate_loss) == 33 and atk.edges == 16714
    t = tables.main_table({"a": df}, "gcn", 0.001)
    assert list(t.index.get_level_values("attack")) == ["clean", "dice", "meta-self", "features only (no graph)"]
    assert (t["seeds"] == 1).all() and t["ours (%)"].str.contains("±").all()
    assert tables.main_table({"a": df}, "deepwalk", 0.001).empty
    err = tables.main_errors(df, "polblogs", 0.001)
    assert set(err) == {"clean", "dice", "meta-self"} and all(0 <= x <= 100 for x in err.values())
    sw = tables.sweep_frame(df)
    assert list(sw.attack.unique()) == ["meta-self"] and list(sw.budget) == [0.0, 0.001, 0.002]
    assert sw.error.iloc[0] == err["clean"]
    tr = tables.transfer_table(df, "polblogs")
    assert tr.shape == (2, 2) and set(tables.transfer_means(df, "polblogs")) == {
        "clean->clean", "clean->poisoned", "poisoned->clean", "poisoned->poisoned"}
    fit = tables.fit_table(df, "polblogs")
    assert list(fit.index) == ["meta-self"] and int(fit["T"].iloc[0]) == 3
    flips, ins = tables.attack_flips(df, "polblogs", "meta-self", 16)
    assert flips.shape == (16, 2) and ins.shape == (16,)
    # the first 4 flips applied: each insertion adds an undirected edge, each removal takes one away
    grown = int(ins[:4].sum()) - int((~ins[:4]).sum())
    assert prefix_graph_edges(flips).size(1) == 2 * (16714 + grown)
    # resume: a second run of the same file measures nothing and gives the same records
    again = experiment.run(MAIN, grid=grid, out=tmp_path / "mt.jsonl", show_progress=False, context={"sizes": sz})
    assert len(again.runs) == 1 and again.records.equals(df)
    s = summary_at(df, "polblogs", "meta-self", 0.002)
    assert s["flips"] == 33 and "gcn" in s["errors"] and 0 <= s["share_inserted"] <= 1
    assert summary_at(df, "polblogs", "clean", 0.001)["flips"] == 0
    assert "features" not in summary_at(df, "polblogs", "clean", 0.001)["errors"]
    assert "polblogs" in tables.provenance_line(run, "test")

    import ipywidgets as w

    from graphtrust.structure.explorer import explorer

    widgets = []
    orig_vbox = w.VBox
    w.VBox = lambda children: widgets.append(children) or orig_vbox(children)
    try:
        explorer({"a": df, "b": df}, 0.001)
    finally:
        w.VBox = orig_vbox
    (run_w, ds), (atk_w, bud), _out = widgets[0][0].children, widgets[0][1].children, widgets[0][2]
    assert atk_w.value == "meta-self" and bud.value == 0.001 and ds.value == "polblogs"
    assert bud.label == "0.1%"  # the slider shows percentages
    bud.value = 0.002
    atk_w.value = "dice"  # dice was evaluated at the main budget only
    assert bud.options == (("0.1%", 0.001),) and bud.value == 0.001
    atk_w.value = "clean"
    run_w.value = "b"
    assert atk_w.value == "clean"
    # the slider starts at the main budget even when a smaller budget comes first
    widgets.clear()
    w.VBox = lambda children: widgets.append(children) or orig_vbox(children)
    try:
        explorer({"a": df}, 0.002)
    finally:
        w.VBox = orig_vbox
    assert widgets[0][1].children[1].value == 0.002


def prefix_graph_edges(flips):
    from graphtrust import datasets
    from graphtrust.structure.experiments import prefix_graph

    data = datasets.load("polblogs", lcc=True)
    return prefix_graph(data, flips, 4).edge_index


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


def test_a_run_in_parts_merges_into_the_whole():
    import pytest

    from graphtrust import experiment
    from graphtrust.structure.cells import MAIN

    sz = _tiny_sizes()
    grid = MAIN.grid(sz)
    whole = experiment.run(MAIN, grid=grid, show_progress=False, context={"sizes": sz})
    parts = [experiment.run(MAIN, grid=grid.only(attack=[a]), show_progress=False, context={"sizes": sz})
             for a in ("meta-self", "clean", "dice")]  # any order: each cell stands alone
    both = experiment.merge(*parts)
    key = ["attack", "kind", "victim", "budget", "victim_seed", "trained_on", "evaluated_on"]
    timing = ["_seconds", "_run", "attack_seconds", "seconds_per_flip"]
    a = whole.records.drop(columns=timing).sort_values(key).reset_index(drop=True)
    b = both.records.drop(columns=timing).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b[a.columns])  # every cell seeds itself: the same numbers
    with pytest.raises(ValueError, match="not in the test profile"):
        MAIN.measure({"dataset": "polblogs", "attack": "nettack"}, {"sizes": sz})


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
