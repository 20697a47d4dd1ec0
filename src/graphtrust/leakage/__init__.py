"""Gradient leakage in federated graph learning (GraphDLG, Wei et al., 2026).

* :mod:`.model` — the global graph classifier (dense GCN → pooling → MLP head), the
  client's shared gradient, defences (clipping + noise, pruning).
* :mod:`.leaks` — what leaks in closed form: label, pooled embedding, a node-count lower
  bound, node features given the structure.
* :mod:`.matching` — gradient matching: DLG, iDLG, and the feature refinement.
* :mod:`.decoder` — auxiliary graphs and the structure decoder trained on them.
* :mod:`.graphdlg` — the GraphDLG pipeline (structure first, then features).
* :mod:`.size` — an attacker's estimate of the node count, with bounds.
* :mod:`.twins` — graphs whose gradients are equal or nearly so: how much structure a
  gradient determines.
* :mod:`.metrics` — the node-alignment protocol, feature MSE, structure AUC, edge F1.
* :mod:`.experiments` — pictures, ablations, defences and architectures as records;
  :mod:`.cells` — the chapter's experiments on the harness; :mod:`.explorer` — pictures.
"""

from .decoder import StructureDecoder, auxiliary_graphs, observation, train_decoder
from .graphdlg import graphdlg
from .leaks import closed_form_features, estimate_num_nodes, recover_label, recover_pooled
from .matching import Reconstruction, dlg, idlg, match
from .metrics import align, chance, score
from .model import GraphClassifier, client_gradient, defend

__all__ = ["GraphClassifier", "client_gradient", "defend", "recover_label", "recover_pooled",
           "estimate_num_nodes", "closed_form_features", "Reconstruction", "match", "dlg", "idlg",
           "StructureDecoder", "auxiliary_graphs", "observation", "train_decoder", "graphdlg",
           "align", "score", "chance"]
