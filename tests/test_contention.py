"""The contention benchmark's pieces: the competitor and the summary (the timings are the benchmark's)."""

from __future__ import annotations

import json
import time

from graphtrust.bench import contention


def test_summary_is_medians_and_their_ratio():
    s = contention.summarise({"alone": [1.0, 3.0, 2.0], "contended": [3.0, 4.0, 5.0], "threads": 2,
                              "thread_policy": "x"})
    assert s["alone_s"] == 2.0 and s["contended_s"] == 4.0 and s["slowdown"] == 2.0
    assert s["alone_range_s"] == [1.0, 3.0]


def _cpu_seconds(pid):
    import os

    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_competitor_is_busy_and_stops():
    import os

    with contention.Competitor(seed=3) as c:
        pid = c.proc.pid
        cpu0 = _cpu_seconds(pid)
        time.sleep(0.5)
        assert c.proc.poll() is None  # still running
        if cpu0 is not None:
            assert _cpu_seconds(pid) - cpu0 > 0.2  # and busy
    assert c.proc is None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_book_timing_takes_contended_times_from_a_build_record(tmp_path, monkeypatch):
    from graphtrust import book

    record = {"written": "2026-12-03 16:00 UTC", "chapters": {
        "ch01_a": {"status": "executed", "seconds": 30.0}, "ch02_b": {"status": "reused", "seconds": 5.0}}}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))

    def fake_execute(root, only=None, force=False, state=None):
        return [book.Chapter("ch01_a", tmp_path / "a.ipynb", status="executed", seconds=12.0)]

    monkeypatch.setattr(book, "execute", fake_execute)
    out = contention.book_timing(tmp_path, contended_record=path)
    assert out["ch01_a"]["alone"]["seconds"] == 12.0 and out["ch01_a"]["contended"]["seconds"] == 30.0
    assert out["ch01_a"]["slowdown"] == 2.5 and "ch02_b" not in out  # a reused chapter was not timed
