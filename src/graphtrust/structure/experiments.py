"""What the Metattack chapter's cells measure with an attack's flips.

* :data:`PAPER` — the paper's misclassification rates at the 5 % budget;
* :func:`prefix_graph` — the graph after the first ``k`` flips of a greedy run (the
  ``k``-flip attack);
* :func:`flip_anatomy` — what kind of pairs an attack flipped;
* :func:`transfer` — poisoning versus evasion: a GCN trained and evaluated on either graph.

The experiments themselves (``metattack``, ``metattack_gaps``, ``metattack_graphs``) are
declared in :mod:`.cells` and run by the harness (``python -m graphtrust.experiments``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Data

from .. import config
from ..graph import apply_flips, degrees
from ..splits import Split

__all__ = ["PAPER", "prefix_graph", "flip_anatomy", "transfer"]

PAPER = {  # misclassification (%) reported by Zügner & Günnemann (2019), 5 % budget
    ("cora_ml", "gcn"): {"clean": "16.6 ± 0.3", "dice": "18.0 ± 0.4", "a-meta-self": "21.8 ± 0.9",
                         "meta-self": "24.5 ± 1.0", "meta-train": "22.0"},
    ("citeseer_npz", "gcn"): {"clean": "28.5 ± 0.9", "dice": "28.9 ± 0.3", "a-meta-self": "31.9 ± 0.7",
                              "meta-self": "34.6 ± 0.7"},
    ("cora_ml", "deepwalk"): {"clean": "20.3 ± 1.0", "dice": "22.8 ± 0.3", "a-meta-self": "25.0 ± 0.6",
                              "meta-self": "28.1 ± 0.6"},
}  # fmt: skip


def prefix_graph(data: Data, flips: torch.Tensor, k: int) -> Data:
    """``data`` with the first ``k`` of ``flips: (K, 2)`` applied (:func:`graphtrust.graph.apply_flips`)."""
    out = data.clone()
    if k:
        out.edge_index = apply_flips(data.edge_index, flips[:k], data.num_nodes)
    return out


def flip_anatomy(data: Data, flips: torch.Tensor, inserted: torch.Tensor) -> dict[str, Any]:
    """What kind of pairs an attack flipped: insertions, same-label endpoints, endpoint degrees."""
    y = data.y
    same = (y[flips[:, 0]] == y[flips[:, 1]]).float()
    deg = degrees(data.edge_index, data.num_nodes)
    d_end = torch.stack([deg[flips[:, 0]], deg[flips[:, 1]]], 1)
    return {
        "flips": int(flips.size(0)),
        "share_inserted": float(inserted.float().mean()) if flips.numel() else 0.0,
        "same_label_inserted": float(same[inserted].mean()) if bool(inserted.any()) else float("nan"),
        "same_label_removed": float(same[~inserted].mean()) if bool((~inserted).any()) else float("nan"),
        "endpoint_degree_min": d_end.min(1).values.tolist(),
        "endpoint_degree_max": d_end.max(1).values.tolist(),
        "clean_edge_same_label": float((y[data.edge_index[0]] == y[data.edge_index[1]]).float().mean()),
    }


def transfer(clean: Data, poisoned: Data, split: Split, seeds) -> dict[str, list[float]]:
    """Accuracy of a GCN trained on clean/poisoned and evaluated on clean/poisoned structure."""
    from ..models import GCN, sparse_features
    from ..training import evaluate, fit

    dev = config.device()
    empty = torch.empty(0, dtype=torch.long)
    x = sparse_features(clean.x).to(dev)  # a structure attack leaves the features alone: one conversion
    y = clean.y.to(dev)
    out: dict[str, list[float]] = {}
    for train_name, train_g in (("clean", clean), ("poisoned", poisoned)):
        for s in seeds:
            config.seed_everything(s)
            model = fit(GCN(clean.num_features, 16, int(clean.y.max()) + 1), x, train_g.edge_index, y,
                        Split(split.train, empty, empty), epochs=200, patience=None, device=dev).model
            for eval_name, eval_g in (("clean", clean), ("poisoned", poisoned)):
                acc = evaluate(model, x, eval_g.edge_index.to(dev), y, split.unlabelled.to(dev))
                out.setdefault(f"{train_name}->{eval_name}", []).append(acc)
    return out
