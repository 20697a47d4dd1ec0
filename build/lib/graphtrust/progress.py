"""Progress bars: ``tqdm.auto`` (a widget in notebooks, text in terminals).

tqdm (>= 4.66) reads ``TQDM_DISABLE=1`` from the environment, which CI and book builds
set so that rendered pages carry no progress-bar frames. Every step of a loop wrapped in
:func:`progress` also lets the thread count follow the machine's load
(:func:`graphtrust.threads.adapt`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from .config import progress_disabled
from .threads import adapt

T = TypeVar("T")

__all__ = ["progress", "tqdm"]


def progress(
    iterable: Iterable[T], desc: str | None = None, enabled: bool = True, **kwargs
) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar that disappears when done.

    ``enabled=False`` hides the bar; otherwise ``TQDM_DISABLE=1`` in the environment does.
    """
    if not enabled or progress_disabled():
        kwargs["disable"] = True
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return _adapting(tqdm(iterable, desc=desc, **kwargs))


class _adapting:
    """A tqdm bar whose iteration calls :func:`~graphtrust.threads.adapt` before each step."""

    def __init__(self, bar):
        self.bar = bar

    def __iter__(self):
        for item in self.bar:
            adapt()
            yield item

    def __len__(self):
        return len(self.bar)

    def __getattr__(self, name):
        return getattr(self.bar, name)
