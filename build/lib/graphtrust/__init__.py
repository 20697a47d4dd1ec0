"""graphtrust: attacks, privacy leakage and unlearning for graph neural networks.

The library behind the graphtrust book. Topic subpackages (structure attacks, label
attacks, gradient leakage, unlearning) build on the shared blocks here:

* :mod:`graphtrust.config` — profiles, environment, device, seeds
* :mod:`graphtrust.datasets` — ``load(name, **options)``
* :mod:`graphtrust.graph` — adjacency helpers
* :mod:`graphtrust.models` — GCN, DenseGCN, SGC, MLP, logistic regression
* :mod:`graphtrust.training` — ``fit`` with early stopping, ``repeat`` over seeds
* :mod:`graphtrust.splits` — stratified and class-balanced splits
* :mod:`graphtrust.plotting` — the book's figure style
* :mod:`graphtrust.results` — results with provenance
"""

# config first: with GRAPHTRUST_THREAD_POLICY=passive it sets the OpenMP wait policy,
# which must happen before torch loads (see graphtrust.config._apply_thread_policy).
from . import config as _config  # noqa: F401

__version__ = "0.1.0"
