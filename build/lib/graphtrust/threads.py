"""Thread count that follows the machine's load: a fair share on a busy laptop.

The library's inner loops (greedy flips, training epochs, gradient-matching steps, pushes)
are thousands of small torch operations, each an OpenMP parallel region that ends in a
barrier: it waits for its slowest thread. Beside another busy process, one of torch's
threads shares a core and is descheduled for whole time slices, and every region waits
for it. Measured on 2 cores beside one busy process, exact Meta-Self ran 2.6-2.8x slower
with 2 threads whatever the wait policy, while one thread ran at the speed it has on an
idle core.

:func:`adapt` is called at the boundaries of those loops (every iteration of
:func:`graphtrust.progress.progress` calls it). A daemon thread, started at the first call,
samples every :data:`INTERVAL` seconds how much CPU the machine and this process used
(Linux ``/proc/stat`` and ``os.times``); :func:`adapt` takes the CPU *other* processes
used over the last :data:`WINDOW` seconds and sets torch's thread count to the cores left
free, at least one, at most the count the user chose. It costs microseconds, so a loop
follows a change of load within about half a second. Elsewhere than Linux, or with
``GRAPHTRUST_THREAD_POLICY`` other than ``adaptive``, it does nothing.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

import torch

from . import config

__all__ = ["adapt", "INTERVAL", "WINDOW", "others_cores"]

#: seconds between two samples of the machine's load (a daemon thread reads /proc/stat)
INTERVAL = 0.25
#: the load is averaged over the samples of the last WINDOW seconds
WINDOW = 0.6

_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_samples: deque[tuple[float, float, float]] = deque(maxlen=16)  # (monotonic time, machine busy s, own cpu s)
_state: dict = {"base": None, "set": None, "others": 0.0, "sampler": None}
_lock = threading.Lock()


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


def _sample() -> bool:
    busy = _machine_busy_seconds()
    if busy is None:
        return False
    t = os.times()
    _samples.append((time.monotonic(), busy, t.user + t.system))
    return True


def _sampler() -> None:
    while _sample():
        time.sleep(INTERVAL)


def _start_sampler() -> bool:
    with _lock:
        if _state["sampler"] is None:
            if not _sample():
                _state["sampler"] = False  # no /proc/stat here: adapt() does nothing
            else:
                th = threading.Thread(target=_sampler, name="graphtrust-load", daemon=True)
                th.start()
                _state["sampler"] = th
    return bool(_state["sampler"])


def others_cores() -> float:
    """Cores other processes used, on average, over the last window :func:`adapt` looked at."""
    return float(_state["others"])


def _others(now: float) -> float | None:
    snap = list(_samples)
    if len(snap) < 2:
        return None
    new = snap[-1]
    old = next((s for s in snap if new[0] - s[0] <= WINDOW), snap[-2])
    if old is new:
        old = snap[-2]
    dt = new[0] - old[0]
    if dt <= 0 or now - new[0] > 4 * INTERVAL + WINDOW:
        return None  # no recent samples (the sampler is starting, or was held up)
    return max(0.0, (new[1] - old[1]) - (new[2] - old[2])) / dt


def adapt() -> int:
    """Set torch's thread count to the cores other processes leave free; returns the count.

    Call it between iterations of a loop of small torch operations, from the thread that
    runs them (OpenMP thread counts are per calling thread). A daemon thread samples the
    machine's load every :data:`INTERVAL` seconds; this call only reads its samples.
    """
    started = _state["sampler"]
    if started is None:  # the lock is taken once, not at every step of a loop
        started = _start_sampler()
    if not started or config.thread_policy()["policy"] != "adaptive":
        return torch.get_num_threads()
    current = torch.get_num_threads()
    if _state["base"] is None or (_state["set"] is not None and current != _state["set"]):
        _state["base"] = current  # first call, or the user changed the count since: theirs is the cap
    others = _others(time.monotonic())
    if others is None:
        _state["set"] = current
        return current
    _state["others"] = others
    want = max(1, min(_state["base"], math.floor(_CORES - others + 0.5)))
    if want != current:
        torch.set_num_threads(want)
    _state["set"] = want
    return want
