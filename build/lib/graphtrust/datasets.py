"""Datasets: one entry point, :func:`load`, on top of PyTorch Geometric's dataset classes.

* ``cora``, ``citeseer`` — :class:`torch_geometric.datasets.Planetoid` (``split="public"``
  or ``"full"``).
* ``cora_ml``, ``cora_npz``, ``citeseer_npz``, ``polblogs`` — the graphs of the
  Nettack/Metattack papers (``danielzuegner/gnn-meta-attack``), read by
  :class:`MetattackNPZ` (a PyG ``InMemoryDataset``); ``lcc=True`` keeps the largest
  connected component. PolBlogs has no features: identity features.
* ``MUTAG``, ``ENZYMES``, ``PROTEINS``, ``AIDS``, ``Mutagenicity`` —
  :class:`torch_geometric.datasets.TUDataset` (returns the dataset of graphs).
* ``sbm`` — a seeded stochastic-block-model graph with class-correlated features
  (:func:`sbm_graph`), built in O(edges) memory so it scales to millions of edges.

Raw files come from ``$GRAPHTRUST_MIRROR/<url without scheme>`` when present, otherwise
from the network. Processed data lands in ``$GRAPHTRUST_CACHE`` only once processing has
succeeded: each dataset is built in a temporary folder that is renamed into place at the
end, so a failed or interrupted run never leaves a half-processed dataset behind.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.datasets import Planetoid, TUDataset
from torch_geometric.io import fs
from torch_geometric.transforms import LargestConnectedComponents

from . import config

__all__ = [
    "load",
    "names",
    "DatasetError",
    "DataUnavailableError",
    "DatasetCorruptError",
    "MetattackNPZ",
    "sbm_graph",
    "source_path",
]


class DatasetError(RuntimeError):
    """Base class of the dataset errors."""


class DataUnavailableError(DatasetError):
    """A raw file is neither in the mirror nor downloadable."""


class DatasetCorruptError(DatasetError):
    """A raw file exists but could not be processed."""


# --------------------------------------------------------------------------- raw files


def source_path(url: str) -> Path | None:
    """Where the mirror keeps ``url`` (``None`` without a mirror)."""
    mirror = config.mirror_dir()
    if mirror is None:
        return None
    return mirror / url.split("://", 1)[-1]


_FETCHED: list[str] = []  # where the raw files of the dataset being built came from


def _fetch(url: str, dest_dir: str, *, extract: bool = False) -> None:
    """Copy ``url`` into ``dest_dir``: from the mirror when it has the file, else download."""
    local = source_path(url)
    os.makedirs(dest_dir, exist_ok=True)
    if local is not None and local.is_file():
        fs.cp(str(local), dest_dir, extract=extract, log=False)
        _FETCHED.append(f"{url} (from the mirror: {local})")
        return
    try:
        fs.cp(url, dest_dir, extract=extract, log=False)
        _FETCHED.append(f"{url} (downloaded)")
    except Exception as err:  # DNS failure, HTTP 404, timeout, ...
        tried = (
            f"the mirror path {local} (not found)"
            if local is not None
            else "no mirror (GRAPHTRUST_MIRROR is unset)"
        )
        raise DataUnavailableError(
            f"Cannot get {url}\n"
            f"  tried: {tried}, then the network ({type(err).__name__}: {err})\n"
            f"  fix:   connect to the internet, or set GRAPHTRUST_MIRROR to a directory "
            f"holding the file at <mirror>/{url.split('://', 1)[-1]} "
            f"(e.g. GRAPHTRUST_MIRROR=../shared/data)."
        ) from None


# --------------------------------------------------------------------------- PyG classes


class _MirroredPlanetoid(Planetoid):
    def download(self) -> None:
        for name in self.raw_file_names:
            _fetch(f"{self.url}/{name}", self.raw_dir)


class _MirroredTU(TUDataset):
    def download(self) -> None:
        url = self.cleaned_url if self.cleaned else self.url
        _fetch(f"{url}/{self.name}.zip", self.raw_dir, extract=True)
        inner = os.path.join(self.raw_dir, self.name)
        for filename in fs.ls(inner):
            fs.mv(filename, os.path.join(self.raw_dir, os.path.basename(filename)))
        fs.rm(inner)


class MetattackNPZ(InMemoryDataset):
    """A graph of the Nettack/Metattack repository (sparse ``.npz``), as a PyG dataset.

    The adjacency is symmetrised, binarised and stripped of self-loops, as in the authors'
    code. Node features keep the file's values (``cora_ml`` has real-valued features;
    PyG's ``read_npz`` would binarise them). A file without features (``polblogs``) gets
    identity features. The result has ``x: (N, D) float``, ``edge_index: (2, 2E) long``
    (both directions) and ``y: (N,) long``.
    """

    url = "https://github.com/danielzuegner/gnn-meta-attack/raw/master/data"
    files = ("cora_ml", "cora", "citeseer", "polblogs")

    def __init__(self, root: str, name: str, transform: Callable | None = None):
        if name not in self.files:
            raise ValueError(f"unknown npz graph {name!r}; one of {', '.join(self.files)}")
        self.name = name
        super().__init__(root, transform)
        self.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        return os.path.join(self.root, "raw")

    @property
    def processed_dir(self) -> str:
        return os.path.join(self.root, "processed")

    @property
    def raw_file_names(self) -> list[str]:
        return [f"{self.name}.npz"]

    @property
    def processed_file_names(self) -> str:
        return "data.pt"

    def download(self) -> None:
        _fetch(f"{self.url}/{self.name}.npz", self.raw_dir)

    def process(self) -> None:
        with np.load(self.raw_paths[0], allow_pickle=False) as f:
            adj = sp.csr_matrix(
                (f["adj_data"], f["adj_indices"], f["adj_indptr"]), shape=tuple(f["adj_shape"])
            )
            if "attr_data" in f:
                x = sp.csr_matrix(
                    (f["attr_data"], f["attr_indices"], f["attr_indptr"]),
                    shape=tuple(f["attr_shape"]),
                ).toarray()
            else:
                x = np.eye(adj.shape[0])
            labels = np.asarray(f["labels"], dtype=np.int64)
        adj = adj + adj.T
        adj.setdiag(0)
        adj.eliminate_zeros()
        coo = adj.tocoo()
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        data = Data(
            x=torch.as_tensor(x, dtype=torch.float32),
            edge_index=edge_index,
            y=torch.from_numpy(labels),
        )
        data.edge_index, _ = _coalesce(data.edge_index, data.num_nodes)
        self.save([data], self.processed_paths[0])


def _coalesce(edge_index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from torch_geometric.utils import coalesce

    return coalesce(edge_index, None, n)


# --------------------------------------------------------------------------- cache


def _build_in_cache(key: str, factory: Callable[[str], Any]) -> Any:
    """Instantiate ``factory(root)`` so that the cache only ever holds complete datasets."""
    final = config.cache_dir() / key
    if final.is_dir():
        try:
            return factory(str(final))
        except Exception:
            # A cache from an incompatible PyG version or a damaged file: rebuild it.
            shutil.rmtree(final, ignore_errors=True)
    tmp = config.cache_dir() / f".tmp-{key.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    _FETCHED.clear()
    try:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # PyG's "Processing..." lines
                factory(str(tmp))
        except DatasetError:
            raise
        except Exception as err:
            raws = "\n    ".join(_FETCHED) or "none"
            raise DatasetCorruptError(
                f"Processing dataset '{key}' failed ({type(err).__name__}: {err}).\n"
                f"  raw files:\n    {raws}\n"
                "  The raw file is probably truncated or not the upstream file: check its copy "
                "in GRAPHTRUST_MIRROR (or delete it and download again). Nothing was written "
                "to the cache."
            ) from err
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # somebody else won the race: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return factory(str(final))


# --------------------------------------------------------------------------- loaders


def _planetoid(name: str, *, split: str = "public", lcc: bool = False) -> Data:
    if split not in ("public", "full"):
        raise ValueError(f"split must be 'public' or 'full', got {split!r}")
    ds = _build_in_cache(f"planetoid/{name}", lambda root: _MirroredPlanetoid(root, name, split))
    data = ds[0]
    if lcc:
        data = LargestConnectedComponents()(data)
    data.name = name
    return data


def _npz(file: str, public_name: str, *, lcc: bool = False) -> Data:
    data = _build_in_cache(f"npz/{file}", lambda root: MetattackNPZ(root, file))[0]
    if lcc:
        data = LargestConnectedComponents()(data)
    data.name = public_name + ("-lcc" if lcc else "")
    return data


def _tu(name: str, *, use_node_attr: bool = False) -> TUDataset:
    return _build_in_cache(
        f"tu/{name}", lambda root: _MirroredTU(root, name, use_node_attr=use_node_attr)
    )


def sbm_graph(
    num_nodes: int = 2000,
    num_classes: int = 5,
    avg_degree: float = 8.0,
    homophily: float = 0.8,
    num_features: int = 64,
    feature_signal: float = 1.0,
    degree_exponent: float | None = None,
    max_degree: int | None = None,
    seed: int = 0,
) -> Data:
    """A seeded stochastic-block-model graph with class-correlated Gaussian features.

    Each of the ``round(num_nodes * avg_degree / 2)`` undirected edges picks a source
    node with probability proportional to its weight, then a target of the same class
    with probability ``homophily`` (else of another class, chosen uniformly), again by
    weight. Weights are 1 (a plain SBM) or, with ``degree_exponent`` (e.g. 2.5), drawn
    from a power law and capped so that expected degrees stay below ``max_degree``: a
    degree-corrected SBM with a realistic, capped tail. Duplicates and self-loops are
    dropped and resampled, so the edge count is exact. Memory is O(N·F + E).

    Features: ``x = mu[y] * feature_signal + noise`` with ``mu: (C, F)`` and noise
    standard normal. Returns ``Data(x: (N, F) float32, edge_index: (2, 2E) long, y: (N,))``.
    """
    if num_nodes < 2 or num_classes < 1 or num_classes > num_nodes:
        raise ValueError("need num_nodes >= 2 and 1 <= num_classes <= num_nodes")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily}")
    if avg_degree <= 0 or avg_degree >= num_nodes - 1:
        raise ValueError(f"avg_degree must lie in (0, num_nodes - 1), got {avg_degree}")
    n, c = int(num_nodes), int(num_classes)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=gen) % c
    if degree_exponent is not None:
        if degree_exponent <= 1:
            raise ValueError("degree_exponent must exceed 1")
        u = torch.rand(n, generator=gen, dtype=torch.float64).clamp_min(1e-12)
        w = u.pow(-1.0 / (degree_exponent - 1.0))
        cap = (max_degree or max(int(math.sqrt(n)), 10)) / avg_degree
        w = torch.minimum(w / w.mean(), torch.tensor(cap, dtype=torch.float64))
    else:
        w = torch.ones(n, dtype=torch.float64)
    order = torch.argsort(y, stable=True)  # nodes grouped by class
    cum = torch.cumsum(w[order], 0)
    counts = torch.bincount(y, minlength=c)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    class_lo = torch.where(starts > 0, cum[(starts - 1).clamp_min(0)], torch.zeros(c, dtype=cum.dtype))
    class_hi = cum[ends - 1]

    def pick(cls: torch.Tensor) -> torch.Tensor:
        lo, hi = class_lo[cls], class_hi[cls]
        r = lo + torch.rand(cls.numel(), generator=gen, dtype=torch.float64) * (hi - lo)
        pos = torch.searchsorted(cum, r).clamp_max(n - 1)
        return order[pos]

    m = int(round(n * avg_degree / 2))
    keys = torch.empty(0, dtype=torch.int64)
    total_w = cum[-1]
    for _ in range(20):
        need = m - keys.numel()
        if need <= 0:
            break
        k = int(need * 1.1) + 16
        r = torch.rand(k, generator=gen, dtype=torch.float64) * total_w
        src = order[torch.searchsorted(cum, r).clamp_max(n - 1)]
        same = torch.rand(k, generator=gen) < homophily
        other = (y[src] + torch.randint(1, max(c, 2), (k,), generator=gen)) % c if c > 1 else y[src]
        dst = pick(torch.where(same, y[src], other))
        lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
        ok = lo != hi
        keys = torch.unique(torch.cat([keys, lo[ok] * n + hi[ok]]))
    if keys.numel() < m:
        raise ValueError("could not place that many distinct edges; lower avg_degree")
    keys = keys[torch.randperm(keys.numel(), generator=gen)[:m]]
    row, col = keys // n, keys % n
    edge_index = torch.stack([torch.cat([row, col]), torch.cat([col, row])])
    edge_index, _ = _coalesce(edge_index, n)
    mu = torch.randn(c, num_features, generator=gen)
    x = mu[y] * feature_signal + torch.randn(n, num_features, generator=gen)
    data = Data(x=x, edge_index=edge_index, y=y)
    data.name = f"sbm-{n}"
    return data


# --------------------------------------------------------------------------- registry

_LOADERS: dict[str, Callable[..., Any]] = {
    "cora": lambda **kw: _planetoid("Cora", **kw),
    "citeseer": lambda **kw: _planetoid("CiteSeer", **kw),
    "cora_ml": lambda **kw: _npz("cora_ml", "cora_ml", **kw),
    "cora_npz": lambda **kw: _npz("cora", "cora_npz", **kw),
    "citeseer_npz": lambda **kw: _npz("citeseer", "citeseer_npz", **kw),
    "polblogs": lambda **kw: _npz("polblogs", "polblogs", **kw),
    "MUTAG": lambda **kw: _tu("MUTAG", **kw),
    "ENZYMES": lambda **kw: _tu("ENZYMES", **kw),
    "PROTEINS": lambda **kw: _tu("PROTEINS", **kw),
    "AIDS": lambda **kw: _tu("AIDS", **kw),
    "Mutagenicity": lambda **kw: _tu("Mutagenicity", **kw),
    "sbm": sbm_graph,
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "cora": ("split", "lcc"),
    "citeseer": ("split", "lcc"),
    "cora_ml": ("lcc",),
    "cora_npz": ("lcc",),
    "citeseer_npz": ("lcc",),
    "polblogs": ("lcc",),
    **{k: ("use_node_attr",) for k in ("MUTAG", "ENZYMES", "PROTEINS", "AIDS", "Mutagenicity")},
    "sbm": tuple(inspect.signature(sbm_graph).parameters),
}


def names() -> list[str]:
    """The dataset names :func:`load` accepts."""
    return list(_LOADERS)


def load(name: str, **options: Any) -> Data | TUDataset:
    """Load a dataset by name.

    Node-classification graphs return one :class:`~torch_geometric.data.Data`
    (``x: (N, D)``, ``edge_index: (2, 2E)`` with both directions, ``y: (N,)``); the
    TU graph-classification sets return the PyG dataset of graphs. Names are matched
    case-insensitively. Options per dataset: ``split`` (``"public"``/``"full"``,
    Planetoid), ``lcc`` (largest connected component), ``use_node_attr`` (TU), and the
    keyword arguments of :func:`sbm_graph` for ``sbm``.
    """
    key = {k.lower(): k for k in _LOADERS}.get(str(name).lower())
    if key is None:
        raise KeyError(f"unknown dataset {name!r}; valid names: {', '.join(_LOADERS)}")
    config.mirror_dir()  # a mis-set mirror fails here, even when the data is cached
    bad = sorted(set(options) - set(_OPTIONS[key]))
    if bad:
        raise TypeError(
            f"dataset {key!r} takes no option(s) {', '.join(bad)}; "
            f"valid: {', '.join(_OPTIONS[key]) or 'none'}"
        )
    return _LOADERS[key](**options)
