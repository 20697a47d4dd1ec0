"""Gradient leakage in federated graph learning (GraphDLG, Wei et al., 2026) — in progress.

* :mod:`.model` — the global graph classifier (dense GCN → pooling → MLP head), the
  client's shared gradient, defences (clipping + noise, pruning).
* :mod:`.leaks` — what leaks in closed form: label, pooled embedding, node count, node
  features given the structure.
"""

from .leaks import closed_form_features, estimate_num_nodes, recover_label, recover_pooled
from .model import GraphClassifier, client_gradient, defend

__all__ = ["GraphClassifier", "client_gradient", "defend", "recover_label", "recover_pooled",
           "estimate_num_nodes", "closed_form_features"]
