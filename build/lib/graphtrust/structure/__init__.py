"""Structure poisoning: Metattack (Zügner & Günnemann, ICLR 2019) and its baselines.

* :func:`attack` — ``meta-self``, ``meta-train`` (exact meta-gradients), ``a-meta-self``,
  ``a-meta-train``, ``a-meta-both`` (approximate), ``first-order``, ``dice``, ``random``.
* :mod:`.metagradient` — the meta-gradient estimators (fast exact, approximate, reference).
* :mod:`.constraints` — no singletons; the degree power-law likelihood-ratio test.
* :mod:`.victims` — GCN, DeepWalk and feature-only victims trained on the poisoned graph.
* :mod:`.cells` — the gap attribution on the harness (``metattack_gaps``).
* ``MODES`` — ``ours``, ``paper`` (the authors' code as closely as known), ``strong``.
"""

from .attacks import (
    METHODS,
    MODES,
    AttackResult,
    attack,
    budget_flips,
    choose_steps,
    self_training_labels,
)
from .victims import deepwalk_victim, features_victim, gcn_victim

__all__ = [
    "METHODS", "MODES", "AttackResult", "attack", "budget_flips", "choose_steps", "self_training_labels",
    "gcn_victim", "deepwalk_victim", "features_victim",
]  # fmt: skip
