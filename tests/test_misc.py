import json
import os
import subprocess
import sys

from graphtrust import progress, status
from graphtrust.results import Result


def test_progress_respects_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.progress(range(3)).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert progress.progress(range(3), enabled=False).disable
    assert list(progress.progress(range(3), enabled=False)) == [0, 1, 2]


def test_result_roundtrip(tmp_path):
    r = Result("demo", {"acc": [0.8, 0.81]}, seconds=1.5)
    path = r.save(tmp_path / "r" / "demo.json")
    back = Result.load(path)
    assert back.data == r.data and back.provenance["torch"] and back.seconds == 1.5


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
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "graphtrust.bench", "gcn", "--epochs", "3", "--repeats", "1"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip().splitlines()
    record = json.loads(out[-1])
    for key in ("benchmark", "machine", "threads", "profile", "device", "seconds_per_epoch", "peak_rss_mib"):
        assert key in record
    assert record["seconds_per_epoch"] > 0
