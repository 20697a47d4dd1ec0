"""The thread policy: set before torch loads, kept when the user chose, reported honestly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _policy(code_before: str = "", **env) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GRAPHTRUST_SET_OMP_WAIT_POLICY", "GRAPHTRUST_THREAD_POLICY")}
    code = code_before + "import json, os; from graphtrust import config; " \
        "print(json.dumps({**config.thread_policy(), 'env': os.environ.get('OMP_WAIT_POLICY', '')}))"
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_graphtrust_sets_the_passive_wait_policy_before_torch_loads():
    p = _policy()
    assert p["env"] == "PASSIVE" and p["ours"] and "graphtrust's default" in p["state"]


def test_the_policy_reaches_the_openmp_runtime():
    """libgomp reads OMP_WAIT_POLICY when torch loads: its 'OMP_DISPLAY_ENV' report shows PASSIVE."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GRAPHTRUST_SET_OMP_WAIT_POLICY")}
    code = "import graphtrust, torch; torch.ones(4).sum()"
    out = subprocess.run([sys.executable, "-c", code], env={**base, "OMP_DISPLAY_ENV": "TRUE"},
                         capture_output=True, text=True)
    if "OMP_WAIT_POLICY" not in out.stderr:
        pytest.skip("this torch build's OpenMP runtime does not report its environment")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr


def test_a_users_choice_is_kept():
    p = _policy(OMP_WAIT_POLICY="ACTIVE")
    assert p["env"] == "ACTIVE" and not p["ours"] and "set by the user" in p["state"]


def test_torch_policy_leaves_the_defaults():
    p = _policy(GRAPHTRUST_THREAD_POLICY="torch")
    assert p["env"] == "" and not p["ours"]


def test_torch_imported_first_is_reported_not_hidden():
    p = _policy("import torch; ")
    assert p["env"] == "" and "imported before graphtrust" in p["state"]


def test_children_of_graphtrust_inherit_the_default_as_ours():
    p = _policy(OMP_WAIT_POLICY="PASSIVE", GRAPHTRUST_SET_OMP_WAIT_POLICY="PASSIVE")
    assert p["ours"] and "graphtrust's default" in p["state"]


def test_bad_policy_is_a_clear_error():
    base = {k: v for k, v in os.environ.items() if k != "GRAPHTRUST_THREAD_POLICY"}
    out = subprocess.run([sys.executable, "-c", "import graphtrust"], capture_output=True, text=True,
                         env={**base, "GRAPHTRUST_THREAD_POLICY": "spin"})
    assert out.returncode != 0 and "GRAPHTRUST_THREAD_POLICY='spin' is not a thread policy" in out.stderr


def test_banner_states_the_policy():
    from graphtrust import config

    assert "threads :" in str(config.banner("metattack"))


def test_adapt_gives_the_cores_others_leave_free(monkeypatch):
    """Deterministic: the machine's busy time and this process's own time are simulated."""
    import types

    import torch

    from graphtrust import threads

    monkeypatch.setenv("GRAPHTRUST_THREAD_POLICY", "adaptive")
    monkeypatch.setattr(threads.config, "thread_policy", lambda: {"policy": "adaptive"})
    monkeypatch.setattr(threads, "_CORES", 4)
    monkeypatch.setattr(threads, "_state", {k: None for k in threads._state} | {"others": 0.0})
    clock = {"t": 100.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads, "_machine_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(threads.os, "times", lambda: types.SimpleNamespace(user=clock["own"], system=0.0))
    before = torch.get_num_threads()
    set_to = []
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: set_to[-1] if set_to else 4)
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: set_to.append(n))

    def tick(own_cores, other_cores, dt=1.0):
        clock["t"] += dt
        clock["own"] += own_cores * dt
        clock["busy"] += (own_cores + other_cores) * dt
        return threads.adapt()

    assert threads.adapt() == 4  # first look: nothing to compare with yet
    assert tick(4, 0.0) == 4 and not set_to  # idle machine: all cores, nothing changed
    assert tick(4, 1.0) == 3 and set_to[-1] == 3  # one busy process: one core fewer
    assert tick(3, 2.2) == 2  # two busy cores
    assert tick(2, 5.0) == 1  # never below one
    assert tick(1, 0.0) == 4  # back to the cap when the others stop
    assert threads.others_cores() == 0.0
    clock["t"] += 0.1  # within the interval: no new look
    assert threads.adapt() == 4
    assert before >= 1


def test_adapt_does_nothing_under_other_policies(monkeypatch):
    from graphtrust import threads

    monkeypatch.setattr(threads.config, "thread_policy", lambda: {"policy": "passive"})
    called = []
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: called.append(n))
    threads.adapt(force=True)
    assert not called
