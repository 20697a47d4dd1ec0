"""The thread policy: adaptive thread count by default; passive waiting set before torch loads."""

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


def test_default_policy_is_adaptive_and_leaves_the_wait_policy_alone():
    p = _policy()
    assert p["policy"] == "adaptive" and p["env"] == "" and "adaptive" in p["state"]


def test_passive_policy_sets_the_wait_policy_before_torch_loads():
    p = _policy(GRAPHTRUST_THREAD_POLICY="passive")
    assert p["env"] == "PASSIVE" and p["ours"] and p["state"] == "passive: OMP_WAIT_POLICY=PASSIVE"


def test_the_passive_policy_reaches_the_openmp_runtime():
    """libgomp reads OMP_WAIT_POLICY when torch loads: its 'OMP_DISPLAY_ENV' report shows PASSIVE."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GRAPHTRUST_SET_OMP_WAIT_POLICY")}
    code = "import graphtrust, torch; torch.ones(4).sum()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**base, "OMP_DISPLAY_ENV": "TRUE", "GRAPHTRUST_THREAD_POLICY": "passive"})
    if "OMP_WAIT_POLICY" not in out.stderr:
        pytest.skip("this torch build's OpenMP runtime does not report its environment")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr


def test_a_users_choice_is_kept():
    p = _policy(OMP_WAIT_POLICY="ACTIVE", GRAPHTRUST_THREAD_POLICY="passive")
    assert p["env"] == "ACTIVE" and not p["ours"] and "set by the user" in p["state"]


def test_torch_policy_leaves_the_defaults():
    p = _policy(GRAPHTRUST_THREAD_POLICY="torch")
    assert p["env"] == "" and not p["ours"] and "torch's defaults" in p["state"]


def test_torch_imported_first_is_reported_not_hidden():
    p = _policy("import torch; ", GRAPHTRUST_THREAD_POLICY="passive")
    assert p["env"] == "" and "imported before graphtrust" in p["state"]


def test_children_of_graphtrust_inherit_the_policy_as_ours():
    p = _policy(OMP_WAIT_POLICY="PASSIVE", GRAPHTRUST_SET_OMP_WAIT_POLICY="PASSIVE",
                GRAPHTRUST_THREAD_POLICY="passive")
    assert p["ours"] and p["state"] == "passive: OMP_WAIT_POLICY=PASSIVE"


def test_bad_policy_is_a_clear_error():
    base = {k: v for k, v in os.environ.items() if k != "GRAPHTRUST_THREAD_POLICY"}
    out = subprocess.run([sys.executable, "-c", "import graphtrust"], capture_output=True, text=True,
                         env={**base, "GRAPHTRUST_THREAD_POLICY": "spin"})
    assert out.returncode != 0 and "GRAPHTRUST_THREAD_POLICY='spin' is not a thread policy" in out.stderr


def test_banner_states_the_policy():
    from graphtrust import config

    assert "threads :" in str(config.banner("metattack"))


def test_adapt_gives_the_cores_others_leave_free(monkeypatch):
    """Deterministic: the load samples (machine busy time, own time) are simulated."""
    from graphtrust import threads

    monkeypatch.setattr(threads.config, "thread_policy", lambda: {"policy": "adaptive"})
    monkeypatch.setattr(threads, "_CORES", 4)
    monkeypatch.setattr(threads, "_start_sampler", lambda: True)
    monkeypatch.setattr(threads, "_state", {"base": None, "set": None, "others": 0.0, "sampler": True})
    samples = threads.deque(maxlen=16)
    monkeypatch.setattr(threads, "_samples", samples)
    clock = {"t": 100.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    set_to = []
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: set_to[-1] if set_to else 4)
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: set_to.append(n))

    def load(own_cores, other_cores, seconds=1.0):
        for _ in range(int(seconds / threads.INTERVAL)):  # what the sampler thread records
            clock["t"] += threads.INTERVAL
            clock["own"] += own_cores * threads.INTERVAL
            clock["busy"] += (own_cores + other_cores) * threads.INTERVAL
            samples.append((clock["t"], clock["busy"], clock["own"]))
        return threads.adapt()

    assert threads.adapt() == 4  # no samples yet: nothing changes
    assert load(4, 0.0) == 4 and not set_to  # idle machine: all cores, nothing changed
    assert load(4, 1.0) == 3 and set_to[-1] == 3  # one busy process: one core fewer
    assert threads.others_cores() == 1.0
    assert load(3, 2.2) == 2  # two busy cores
    assert load(2, 5.0) == 1  # never below one
    assert load(1, 0.0) == 4  # back to the cap as soon as the others stop
    set_to.append(2)  # the user sets 2 threads: that is the cap from now on
    assert load(2, 0.0) == 2
    assert load(2, 1.0) == 2  # 4 cores, one busy: 3 free, capped at 2
    clock["t"] += 10  # the samples are old (sampler held up): no decision on stale data
    assert threads.adapt() == 2


def test_adapt_does_nothing_under_other_policies(monkeypatch):
    from graphtrust import threads

    monkeypatch.setattr(threads.config, "thread_policy", lambda: {"policy": "passive"})
    called = []
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: called.append(n))
    threads.adapt()
    assert not called


def test_adapt_sees_a_real_busy_process():
    """On Linux with 2+ cores: a busy child process takes a thread away, within a second."""
    import time

    import torch

    from graphtrust import threads
    from graphtrust.bench.contention import Competitor

    if not threads._start_sampler() or threads._CORES < 2 or threads.config.thread_policy()["policy"] != "adaptive":
        pytest.skip("needs Linux /proc/stat, 2+ cores and the adaptive policy")
    cap = torch.get_num_threads()
    try:
        with Competitor():
            time.sleep(1.2)
            n = threads.adapt()
            assert threads.others_cores() >= 0.5  # the busy process is seen
            if threads._CORES <= cap and cap >= 2:
                assert n < cap  # and gets a core
        time.sleep(1.2)
        # a share of the machine afterwards: at most every core (plus sampling noise), even
        # when other programs keep the whole machine busy (as on a shared CI machine)
        assert 0.0 <= threads.others_cores() <= threads._CORES + 0.1
    finally:
        torch.set_num_threads(cap)
