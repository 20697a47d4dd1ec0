"""Shared fixtures. Dataset tests read raw files from GRAPHTRUST_MIRROR (or the network)."""

from __future__ import annotations

# isort: off
import graphtrust  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)
import pytest
import torch
# isort: on

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def one_thread():
    """Bitwise comparisons need one fixed thread count: the adaptive policy changes it with
    the machine's load, and a reduction summed in another order can steer an optimisation
    elsewhere (a user's count caps the policy, see graphtrust.threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def offline(monkeypatch):
    """Make every non-local download fail as it does without a network."""
    from torch_geometric.io import fs

    real_cp = fs.cp

    def cp(src, dst, *args, **kwargs):
        if "://" in str(src) and not str(src).startswith("file://"):
            raise OSError(f"network disabled in this test: {src}")
        return real_cp(src, dst, *args, **kwargs)

    monkeypatch.setattr(fs, "cp", cp)
    return cp


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty GRAPHTRUST_CACHE for tests that inspect what gets written."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHTRUST_CACHE", str(cache))
    return cache
