"""Benchmarks: ``python -m graphtrust.bench NAME [options]``.

Each benchmark is a function registered under a name; it prints what it likes and
returns a dict of figures. The runner prints one JSON line last, with the figures plus
the machine, thread count, profile and device, so scripts can read ``tail -n 1``.
Speed targets live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import config
from ..config import machine

__all__ = ["benchmark", "main", "machine", "peak_rss_mib"]


@dataclass
class _Benchmark:
    name: str
    help: str
    func: Callable[[argparse.Namespace], dict[str, Any]]
    arguments: Callable[[argparse.ArgumentParser], None] | None


_REGISTRY: dict[str, _Benchmark] = {}


def benchmark(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register ``func(args) -> dict`` as benchmark ``name``; ``arguments`` adds its options."""

    def deco(func):
        _REGISTRY[name] = _Benchmark(name, help, func, arguments)
        return func

    return deco


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def main(argv: list[str] | None = None) -> int:
    _discover()
    parser = argparse.ArgumentParser(prog="python -m graphtrust.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="name", metavar="NAME")
    for b in sorted(_REGISTRY.values(), key=lambda b: b.name):
        text = b.help.replace("%", "%%")  # argparse formats help strings with %
        p = sub.add_parser(b.name, help=text, description=text)
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
        if b.arguments is not None:
            b.arguments(p)
    args = parser.parse_args(argv)
    if args.name is None:
        parser.print_help()
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    figures = _REGISTRY[args.name].func(args)
    dev = config.device()
    record = {
        "benchmark": args.name,
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "profile": config.profile_name(),
        "device": config.device_description(dev),
        **figures,
    }
    if "peak_rss_mib" not in record:
        record["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(record))
    return 0
