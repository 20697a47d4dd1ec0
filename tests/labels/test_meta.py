import itertools
import math

import pytest
import torch

from graphtrust import datasets
from graphtrust.labels import bin_pair
from graphtrust.labels.meta import ksubset_marginals, meta_attack


@pytest.mark.parametrize("n,k", [(6, 1), (7, 3), (8, 8)])
def test_ksubset_marginals_match_brute_force(n, k):
    theta = (torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n + k)) * 2).requires_grad_(True)
    marg = ksubset_marginals(theta, k)
    weights, ref = [], torch.zeros(n, dtype=torch.float64)
    for s in itertools.combinations(range(n), k):
        w = math.exp(float(theta.detach()[list(s)].sum()))
        weights.append(w)
        ref[list(s)] += w
    ref /= sum(weights)
    assert torch.allclose(marg.detach(), ref, atol=1e-12) and marg.sum().item() == pytest.approx(k)
    # differentiable again (what the straight-through estimator needs)
    (g,) = torch.autograd.grad(marg[0], theta)
    assert torch.isfinite(g).all()
    with pytest.raises(ValueError):
        ksubset_marginals(theta.detach(), n + 1)


@pytest.mark.parametrize("binary", [True, False])
def test_meta_attack_flips_exactly_the_budget(binary):
    data = datasets.load("sbm", num_nodes=200, num_classes=3, avg_degree=5, homophily=0.85, num_features=20,
                         feature_signal=0.6, seed=5)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    pool, test = perm[:30].sort().values, perm[30:].sort().values
    res = meta_attack(data.x, data.edge_index, data.y, pool, test, data.y[test], 5, binary=binary,
                      outer_steps=5, steps=5)
    changed = (res.labels != data.y).nonzero().view(-1)
    assert changed.numel() == 5 and set(changed.tolist()) <= set(pool.tolist())
    if binary:
        a, b = bin_pair(data.y)
        assert set(data.y[changed].tolist()) <= {a, b} and set(res.labels[changed].tolist()) <= {a, b}
