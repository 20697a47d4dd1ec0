"""Results as objects with their provenance, saved and loaded as JSON.

A table in the book is rendered from a :class:`Result` the code produced (in the same
run, or saved by a full-profile run on a GPU), never from numbers typed into prose.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import config

__all__ = ["Result", "save", "load"]


@dataclass
class Result:
    """Named numbers plus where, when and with what they were produced."""

    name: str
    data: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=config.provenance)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    seconds: float | None = None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)
        return path

    def combined_with(self, extra: Result, data: dict[str, Any]) -> Result:
        """A result holding ``data`` (merged by the caller) whose provenance lists both runs.

        ``provenance["runs"]`` keeps each run's machine, versions, creation time and seconds,
        so that a table assembled from runs on different machines says so.
        """
        runs = self.provenance.get("runs", [dict(self.provenance, created=self.created, seconds=self.seconds)])
        prov = dict(self.provenance, runs=[*runs, dict(extra.provenance, created=extra.created, seconds=extra.seconds)])
        return Result(self.name, data, provenance=prov, seconds=(self.seconds or 0) + (extra.seconds or 0))

    @classmethod
    def load(cls, path: str | Path) -> Result:
        raw = json.loads(Path(path).read_text())
        missing = {"name", "data", "provenance"} - set(raw)
        if missing:
            raise ValueError(f"{path} is not a saved Result (missing {', '.join(sorted(missing))})")
        return cls(**raw)


def save(result: Result, path: str | Path) -> Path:
    return result.save(path)


def load(path: str | Path) -> Result:
    return Result.load(path)
