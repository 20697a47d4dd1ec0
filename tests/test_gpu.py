"""Each topic's main algorithm on CUDA against its CPU result (``pytest -m gpu``; skipped without a GPU).

Run on a lent GPU with ``GRAPHTRUST_MIRROR`` set: ``python -m pytest -m gpu -p no:nbmake tests/test_gpu.py``.
"""

from __future__ import annotations

import pytest
import torch

from graphtrust import datasets
from graphtrust.splits import stratified_split

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.fixture(scope="module")
def cora_ml():
    data = datasets.load("cora_ml", lcc=True)
    return data, stratified_split(data.y, 0.1, 0.1, seed=0)


@pytest.mark.parametrize("method", ["meta-self", "a-meta-self"])
def test_metattack_flips_on_cuda_equal_the_cpu_flips(cora_ml, method):
    """Same labels, seed and T: the greedy flips agree (a tie broken differently in float32
    may change a later flip, so the first ten must agree and the scores of all be close)."""
    from graphtrust.structure import attack

    data, split = cora_ml
    labels = data.y.clone()
    kw = dict(steps=30, labels=labels, seed=0, show_progress=False)
    cpu = attack(data, split, method, 10, device="cpu", **kw)
    gpu = attack(data, split, method, 10, device="cuda", **kw)
    assert torch.equal(cpu.flips, gpu.flips), (cpu.flips.tolist(), gpu.flips.tolist())
    blocks = attack(data, split, method, 10, device="cuda", block_rows=256, **kw)
    assert torch.equal(gpu.flips, blocks.flips)


def test_exact_meta_gradient_on_cuda_matches_cpu(cora_ml):
    from graphtrust.graph import as_operator, to_dense
    from graphtrust.structure.metagradient import MetaProblem, exact_meta_gradient

    data, split = cora_ml
    grads = {}
    for dev in ("cpu", "cuda"):
        p = MetaProblem(x=as_operator(data.x.double().to(dev)), targets=data.y.to(dev), idx_train=split.train.to(dev),
                        idx_unlabeled=split.unlabelled.to(dev), num_classes=7, steps=100)
        grads[dev] = exact_meta_gradient(to_dense(data.edge_index.to(dev), data.num_nodes, torch.float64), p).cpu()
    torch.testing.assert_close(grads["cuda"], grads["cpu"], rtol=1e-9, atol=1e-12)


def test_label_flip_attack_on_cuda_equals_cpu(cora_ml):
    from graphtrust.graph import propagate
    from graphtrust.labels.attacks import linear_surrogate_attack
    from graphtrust.labels.surrogates import sgc_map

    data, split = cora_ml
    pool, targets = split.train, split.unlabelled
    flipped = {}
    for dev in ("cpu", "cuda"):
        xhat = propagate(data.x.to(dev), data.edge_index.to(dev), 2)
        m = sgc_map(xhat, pool.to(dev), targets.to(dev))
        res = linear_surrogate_attack(data.y.to(dev), pool.to(dev), targets.to(dev), data.y[targets].to(dev),
                                      m, 28, binary=True)
        flipped[dev] = res.flipped.cpu().sort().values
    assert torch.equal(flipped["cpu"], flipped["cuda"])


def test_scalegun_lazy_update_on_cuda_equals_cpu():
    from graphtrust.unlearning import Graph, LazyPropagation, exact_embedding

    data = datasets.load("cora_ml", lcc=True)
    ei = data.edge_index[:, data.edge_index[0] < data.edge_index[1]][:, :100].t()
    out = {}
    for dev in ("cpu", "cuda"):
        g = Graph(data.edge_index, data.num_nodes, device=dev)
        lp = LazyPropagation(g, data.x.double(), r_max=1e-9)
        lp.remove_edges(ei.to(dev))
        out[dev] = (lp.embedding.cpu(), exact_embedding(g, data.x.double().to(dev)).cpu())
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["jaccard", "svd", "gnnguard", "rgcn", "soft-median-gdc"])
def test_defence_outputs_and_edge_gradients_on_cuda_match_cpu(cora_ml, name):
    """The same weights give the same logits and the same gradient w.r.t. the edge weights
    (what an adaptive attack follows) on CUDA as on the CPU."""
    from graphtrust import defences

    data, _ = cora_ml
    torch.manual_seed(0)
    model = defences.build(name, data).eval()
    outs = []
    for dev in ("cpu", "cuda"):
        m = model.to(dev)
        w = torch.ones(data.edge_index.size(1), device=dev, requires_grad=True)
        out = m(data.x.to(dev), data.edge_index.to(dev), w)
        (g,) = torch.autograd.grad(out.logsumexp(1).sum(), w)
        outs.append((out.detach().cpu(), g.cpu()))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-4, rtol=1e-3)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-3, rtol=1e-2)


@pytest.mark.parametrize("name", ["gcn", "gnnguard"])
def test_meta_gradient_on_cuda_matches_cpu(cora_ml, name):
    """Meta-PGD's unrolled training: the trained logits and the meta-gradient w.r.t. the edge
    weights agree on CUDA and the CPU (float64, 10 unrolled Adam steps)."""
    from graphtrust import defences

    data, split = cora_ml
    torch.manual_seed(0)
    model = defences.build(name, data).double().eval()
    outs = []
    for dev in ("cpu", "cuda"):
        u = defences.UnrolledTraining(model.to(dev), data.y.to(dev), split.train.to(dev), steps=10)
        w = torch.ones(data.edge_index.size(1), device=dev, dtype=torch.float64, requires_grad=True)
        out = u(data.x.double().to(dev), data.edge_index.to(dev), w)
        (g,) = torch.autograd.grad(out[split.unlabelled.to(dev)].logsumexp(1).sum(), w)
        outs.append((out.detach().cpu(), g.cpu()))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-6, atol=1e-9)
