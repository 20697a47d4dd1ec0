"""Progress bars: ``tqdm.auto`` (a widget in notebooks, text in terminals).

tqdm (>= 4.66) reads ``TQDM_DISABLE=1`` from the environment, which CI and book builds
set so that rendered pages carry no progress-bar frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from .config import progress_disabled

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
    return tqdm(iterable, desc=desc, **kwargs)
