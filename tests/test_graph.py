import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_undirected

from graphtrust import graph


def _random_graph(n=30, m=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, m), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    return to_undirected(ei, num_nodes=n)


def test_dense_roundtrip_and_counts():
    ei = _random_graph()
    adj = graph.to_dense(ei, 30)
    assert torch.equal(adj, adj.t())
    back = graph.from_dense(adj)
    assert torch.equal(graph.to_dense(back, 30), adj)
    assert graph.num_undirected_edges(ei) == int(adj.sum()) // 2
    assert torch.equal(graph.degrees(ei, 30).float(), adj.sum(1))


def test_normalize_dense_matches_pyg_gcn_norm():
    ei = _random_graph()
    dense = graph.normalize_dense(graph.to_dense(ei, 30))
    e2, w = gcn_norm(ei, None, 30, add_self_loops=True)
    ref = torch.zeros(30, 30)
    ref[e2[0], e2[1]] = w
    assert torch.allclose(dense, ref, atol=1e-6)
    assert torch.allclose(graph.normalized_sparse(ei, 30).to_dense(), ref, atol=1e-6)


def test_propagate():
    ei = _random_graph()
    x = torch.randn(30, 4)
    a = graph.normalize_dense(graph.to_dense(ei, 30))
    assert torch.allclose(graph.propagate(x, ei, 2), a @ a @ x, atol=1e-5)
    assert torch.equal(graph.propagate(x, ei, 0), x)
    with pytest.raises(ValueError):
        graph.propagate(x, ei, -1)


def test_check_adjacency():
    adj = graph.to_dense(_random_graph(), 30)
    graph.check_adjacency(adj)
    bad = adj.clone()
    bad[0, 1], bad[1, 0] = 1, 0
    with pytest.raises(ValueError, match="not symmetric"):
        graph.check_adjacency(bad)
    with pytest.raises(ValueError, match="not binary"):
        graph.check_adjacency(adj * 0.5)
    with pytest.raises(ValueError, match="self-loops"):
        graph.check_adjacency(adj + torch.eye(30))
    with pytest.raises(ValueError, match="square"):
        graph.check_adjacency(torch.zeros(3, 4))


def test_sparse_matrix_product_and_gradient_match_dense():
    from graphtrust.graph import SparseMatrix

    g = torch.Generator().manual_seed(0)
    a = (torch.rand(40, 25, generator=g) < 0.15).float() * torch.randn(40, 25, generator=g)
    m = SparseMatrix(a)
    for values in (None, m.values * torch.rand(m.nnz, generator=g)):  # replaced entries, e.g. dropout
        dense_a = a if values is None else torch.sparse_csr_tensor(m.crow, m.col, values, m.shape).to_dense()
        b = torch.randn(25, 3, generator=g, requires_grad=True)
        out = m.matmul(b, values)
        (out.sin().sum()).backward()
        grad, b.grad = b.grad.clone(), None
        ref = dense_a @ b
        ref.sin().sum().backward()
        assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(grad, b.grad, atol=1e-6)
    s = a[:25] + a[:25].t()
    sym = SparseMatrix(s, symmetric=True)
    b = torch.randn(25, 2, requires_grad=True)
    sym.matmul(b).square().sum().backward()
    assert torch.allclose(b.grad, 2 * s.t() @ (s @ b.detach()), atol=1e-5)
    with pytest.raises(ValueError, match="values"):
        m.matmul(b, torch.ones(3))
    with pytest.raises(ValueError, match="square"):
        SparseMatrix(a, symmetric=True)
