import json
import os
import subprocess
import sys

from graphtrust import progress, status


def test_progress_respects_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.progress(range(3)).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert progress.progress(range(3), enabled=False).disable
    assert list(progress.progress(range(3), enabled=False)) == [0, 1, 2]


def test_execution_table_reads_nbclient_timings(tmp_path):
    cell = {
        "cell_type": "code", "source": "1", "outputs": [],
        "metadata": {"execution": {"iopub.execute_input": "2026-01-01T10:00:00.000Z",
                                   "shell.execute_reply": "2026-01-01T10:00:42.500Z"}},
    }  # fmt: skip
    (tmp_path / "a.ipynb").write_text(json.dumps({"cells": [cell]}))
    (tmp_path / "b.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}}]}))
    rows = status.execution_table(tmp_path)
    assert rows[0]["notebook"] == "a" and rows[0]["seconds"] == 42.5
    assert rows[1]["executed"] is False and rows[1]["seconds"] is None
    assert status.versions()["torch"] != "-"


def test_bench_prints_json_last(tmp_path):
    # one thread: these check fields, not speed, and the test workers run side by side
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "graphtrust.bench", "gcn", "--threads", "1", "--epochs", "3", "--repeats", "1"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip().splitlines()
    record = json.loads(out[-1])
    for key in ("benchmark", "machine", "threads", "profile", "device", "seconds_per_epoch", "peak_rss_mib"):
        assert key in record
    assert record["seconds_per_epoch"] > 0


def test_status_tables_from_a_build_record_and_a_saved_timing(tmp_path, monkeypatch):
    rec = {"written": "w", "machine": "m", "environment": {"profile": "quick"}, "thread_policy": "adaptive",
           "chapters": {"ch01_a": {"status": "executed", "seconds": 12.0, "executed_at": "t",
                                   "slowest_cells": [{"cell": 3, "seconds": 9.0, "source": "x"}]},
                        "ch02_b": {"status": "reused", "seconds": 5.0, "executed_at": "t0", "slowest_cells": []},
                        "status": {"status": "executed", "seconds": 1.0}}}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(rec))
    monkeypatch.setenv("GRAPHTRUST_BUILD_RECORD", str(path))
    table, how = status.build_table(tmp_path)
    assert list(table.index) == ["ch01_a", "ch02_b"] and table.loc["ch01_a", "slowest cell"] == "9 s (cell 3)"
    assert table.loc["ch02_b", "in this build"] == "reused" and "graphtrust.book" in how
    monkeypatch.delenv("GRAPHTRUST_BUILD_RECORD")
    assert status.build_table(tmp_path)[0] is None
    timing = {"machine": "m", "threads": 2, "created": "c", "book": {
        "ch01_a": {"alone": {"seconds": 10.0}, "contended": {"seconds": 15.0}, "slowdown": 1.5},
        "ch02_b": {"alone": {"seconds": 20.0}, "contended": {"seconds": 30.0}, "slowdown": 1.5}},
        "note": "Contended times from a build record."}
    (tmp_path / "t.json").write_text(json.dumps(timing))
    t, how = status.timing_table(tmp_path / "t.json")
    assert t.loc["whole book"].tolist() == [30.0, 45.0, 1.5] and how.endswith("from a build record.")
    assert status.timing_table(tmp_path / "missing.json")[0] is None


def test_mean_std_pivots_with_the_sample_std_and_a_fixed_order():
    import pandas as pd

    from graphtrust.results import mean_std

    df = pd.DataFrame({"protocol": ["b", "b", "a", "a", "a", "c"], "attack": ["x", "x", "x", "y", "y", "x"],
                       "accuracy": [0.5, 0.7, 0.8, 0.1, 0.3, 0.9]})
    t = mean_std(df, "protocol", "attack", "accuracy", order={"protocol": ["b", "a"]})
    assert list(t.index) == ["b", "a"]  # "c" is not listed: dropped
    assert t.loc["b", "x"] == "60.0 ± 14.1"  # sample std of 50 and 70
    assert t.loc["a", "x"] == "80.0" and t.loc["b", "y"] == "" and t.loc["a", "y"] == "20.0 ± 14.1"
    assert int(t.attrs["n"].loc["a", "y"]) == 2
    # every group a single record: pandas then drops the std columns altogether
    one = mean_std(df.drop_duplicates(["protocol", "attack"]), "protocol", "attack", "accuracy")
    assert one.loc["b", "x"] == "50.0" and one.loc["a", "y"] == "10.0" and one.loc["c", "y"] == ""


def _exit_without_result(q):
    raise SystemExit(3)


def _put_result(q):
    q.put({"train_seconds": 1.0})


def test_defences_bench_does_not_wait_for_a_child_that_died():
    """A defence that raises in the measuring process (as SVD did on CUDA) gives an error
    row instead of a benchmark that waits forever on its queue."""
    import multiprocessing as mp

    from graphtrust.bench.defences import _result

    ctx = mp.get_context("fork")
    for target, expected in ((_exit_without_result, None), (_put_result, {"train_seconds": 1.0})):
        q = ctx.Queue()
        p = ctx.Process(target=target, args=(q,))
        p.start()
        assert _result(q, p, poll_s=0.2) == expected
        p.join()


def test_bench_help_lists_every_benchmark():
    """Benchmark help texts may hold '%' (argparse formats them): --help must not crash."""
    import contextlib
    import io

    from graphtrust import bench

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        bench.main(["--help"])
    assert "defences" in buf.getvalue() and "metattack" in buf.getvalue()
