"""Thread count that follows the machine's load: a fair share on a busy laptop.

The library's inner loops (greedy flips, training epochs, gradient-matching steps, pushes)
are thousands of small torch operations, each an OpenMP parallel region that ends in a
barrier: it waits for its slowest thread. Beside another busy process, one of torch's
threads shares a core and is descheduled for whole time slices, and every region waits
for it. Measured on 2 cores beside one busy process, exact Meta-Self ran 2.6-2.8x slower
with 2 threads whatever the wait policy, while one thread ran at the speed it has on an
idle core.

:func:`adapt` is called at the boundaries of those loops (every iteration of
:func:`graphtrust.progress.progress` calls it). At most every :data:`INTERVAL` seconds it
reads how much CPU *other* processes used since its last look (Linux ``/proc/stat`` minus
this process's own time) and sets torch's thread count to the cores left free, at least
one, at most the count the user chose. It never raises and costs a few microseconds
between looks. Elsewhere than Linux, or with ``GRAPHTRUST_THREAD_POLICY`` other than
``adaptive``, it does nothing.
"""

from __future__ import annotations

import math
import os
import time

import torch

from . import config

__all__ = ["adapt", "INTERVAL", "others_cores"]

#: seconds between two looks at the machine's load
INTERVAL = 0.5

_state: dict = {"t": None, "busy": None, "own": None, "base": None, "set": None, "others": 0.0}
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    v = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(v) - v[3] - v[4]) / _TICK


def others_cores() -> float:
    """Cores other processes used, on average, over the last interval :func:`adapt` measured."""
    return float(_state["others"])


def adapt(force: bool = False) -> int:
    """Set torch's thread count to the cores other processes leave free; returns the count.

    Call it between iterations of a loop of small torch operations, from the thread that
    runs them (OpenMP thread counts are per calling thread).
    """
    if config.thread_policy()["policy"] != "adaptive":
        return torch.get_num_threads()
    now = time.monotonic()
    if not force and _state["t"] is not None and now - _state["t"] < INTERVAL:
        return _state["set"] or torch.get_num_threads()
    busy = _machine_busy_seconds()
    if busy is None:
        return torch.get_num_threads()
    t = os.times()
    own = t.user + t.system
    current = torch.get_num_threads()
    if _state["base"] is None or (_state["set"] is not None and current != _state["set"]):
        _state["base"] = current  # first call, or the user changed the count since: theirs is the cap
    if _state["t"] is not None and now > _state["t"]:
        dt = now - _state["t"]
        others = max(0.0, (busy - _state["busy"]) - (own - _state["own"])) / dt
        _state["others"] = others
        want = max(1, min(_state["base"], math.floor(_CORES - others + 0.5)))
        if want != current:
            torch.set_num_threads(want)
        _state["set"] = want
    else:
        _state["set"] = current
    _state["t"], _state["busy"], _state["own"] = now, busy, own
    return _state["set"]
