"""Label poisoning (Lingam, Akhondzadeh & Bojchevski, ICLR 2024): attacks on training labels.

* :mod:`.attacks` — random and degree baselines, the exact linear-surrogate attacks
  (SGC, NTK; multi-class and BIN), LafAK (as released, and our first version), LP, MG;
  :func:`~.attacks.bin_pair`, the one rule for the two classes of every BIN attack.
* :mod:`.surrogates` — the SGC ridge map (dual form) and the GCN neural tangent kernel.
* :mod:`.meta` — the meta attack (unrolled surrogate, soft top-k, Gumbel 0-1 loss).
* :mod:`.protocol`, :mod:`.victims` — flawed and corrected defender protocols; GCN, GAT, APPNP, MLP.
* :mod:`.ensemble` — many victims of one architecture trained at once (the protocols' workhorse).
* :mod:`.protocol` also holds the paper's tuned defender (:func:`~.protocol.tuned_protocol`, Optuna).
* :mod:`.cells` — the chapter's experiments on the harness (``label_pitfalls``, ``label_attacks``).
* :mod:`.experiments` — attacks by name (:class:`~.experiments.Attacker`) and their cost.
* :mod:`.summary`, :mod:`.explorer` — coverage, claims and tables on flat records; the widget.
"""

from .attacks import (
    LabelAttack,
    attacker_labels,
    bin_pair,
    degree_attack,
    label_budget,
    lafak_attack,
    linear_surrogate_attack,
    lp_attack,
    mg_attack,
    random_attack,
)
from .surrogates import gcn_ntk, lafak_map, ntk_map, sgc_features, sgc_map

__all__ = [
    "LabelAttack", "attacker_labels", "label_budget", "bin_pair", "random_attack", "degree_attack",
    "linear_surrogate_attack", "lafak_attack", "lp_attack", "mg_attack", "sgc_features", "sgc_map", "lafak_map", "gcn_ntk", "ntk_map",
]  # fmt: skip
