"""Certified graph unlearning (ScaleGUN, Yi & Wei, ICLR 2025).

* :mod:`.propagation` — GPR embeddings, exact and lazily maintained (forward push) under
  edge, node and feature removals, with a computable error bound.
* :mod:`.certified` — the certified linear model: loss perturbation, one-vs-rest logistic
  regression, Newton-step removal, gradient-residual accounting with the approximation
  term, retraining when the budget would be exceeded; baselines (retraining, CGU).
* :mod:`.efficacy` — the deleted-data replay test and a membership-inference check.
* :mod:`.experiments` — the methods by name (``Unlearner``: ScaleGUN, CGU, retraining)
  and what the chapter measures with them; :mod:`.cells` — the chapter's experiment
  ``scalegun`` on the harness; :mod:`.tables`, :mod:`.figures` — its tables and figures.
"""

from .propagation import Graph, LazyPropagation, exact_embedding, sgc_weights

__all__ = ["Graph", "LazyPropagation", "exact_embedding", "sgc_weights"]
