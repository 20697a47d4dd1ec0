import numpy as np
import pytest
import torch

from graphtrust import config, datasets
from graphtrust.graph import num_undirected_edges


@pytest.mark.parametrize(
    "name,options,nodes,edges",
    [
        ("cora_ml", {"lcc": True}, 2810, 7981),
        ("citeseer_npz", {"lcc": True}, 2110, 3668),
        ("polblogs", {"lcc": True}, 1222, 16714),
        ("cora_npz", {"lcc": True}, 2485, 5069),
        ("cora", {}, 2708, 5278),
    ],
)
def test_dataset_facts(name, options, nodes, edges):
    data = datasets.load(name, **options)
    assert data.num_nodes == nodes
    assert num_undirected_edges(data.edge_index) == edges
    assert data.is_undirected() and not data.has_self_loops()
    assert data.x.size(0) == nodes and data.y.size(0) == nodes


def test_polblogs_has_identity_features():
    data = datasets.load("polblogs", lcc=True)
    assert data.x.shape == (1222, 1490)  # rows of the identity of the full graph
    assert torch.equal(data.x.sum(1), torch.ones(1222))
    assert data.y.unique().tolist() == [0, 1]


def test_cora_ml_keeps_real_valued_features():
    x = datasets.load("cora_ml").x
    assert x.shape == (2995, 2879)
    assert not torch.all((x == 0) | (x == 1))


def test_planetoid_splits():
    pub = datasets.load("cora")
    assert (int(pub.train_mask.sum()), int(pub.val_mask.sum()), int(pub.test_mask.sum())) == (140, 500, 1000)
    full = datasets.load("cora", split="full")
    assert (int(full.train_mask.sum()), int(full.val_mask.sum()), int(full.test_mask.sum())) == (1208, 500, 1000)
    cs = datasets.load("citeseer", split="full")
    assert (int(cs.train_mask.sum()), int(cs.val_mask.sum()), int(cs.test_mask.sum())) == (1827, 500, 1000)
    with pytest.raises(ValueError, match="split must be"):
        datasets.load("cora", split="random")


def test_tu_datasets():
    mutag = datasets.load("MUTAG")
    assert len(mutag) == 188 and mutag.num_classes == 2
    assert datasets.load("mutag") is not None  # names are case-insensitive
    assert len(datasets.load("ENZYMES")) == 600


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match="unknown dataset 'pubmedd'.*cora_ml.*MUTAG.*sbm"):
        datasets.load("pubmedd")


def test_unknown_option():
    with pytest.raises(TypeError, match="takes no option.*valid: lcc"):
        datasets.load("cora_ml", split="full")


def test_missing_file_names_url_mirror_path_and_fix(tmp_path, monkeypatch, fresh_cache, offline):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("GRAPHTRUST_MIRROR", str(mirror))
    with pytest.raises(datasets.DataUnavailableError) as info:
        datasets.load("polblogs")
    msg = str(info.value)
    url = "https://github.com/danielzuegner/gnn-meta-attack/raw/master/data/polblogs.npz"
    assert url in msg
    assert str(mirror / "github.com/danielzuegner/gnn-meta-attack/raw/master/data/polblogs.npz") in msg
    assert "GRAPHTRUST_MIRROR" in msg
    assert not any(p.is_file() for p in fresh_cache.rglob("*"))  # nothing cached


def test_missing_file_without_mirror(monkeypatch, fresh_cache, offline):
    monkeypatch.delenv("GRAPHTRUST_MIRROR", raising=False)
    with pytest.raises(datasets.DataUnavailableError, match="GRAPHTRUST_MIRROR is unset"):
        datasets.load("cora")
    assert not any(p.is_file() for p in fresh_cache.rglob("*"))


def test_mirror_directory_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_MIRROR", str(tmp_path / "absent"))
    with pytest.raises(config.ConfigError, match="does not exist"):
        datasets.load("cora")


def test_corrupt_raw_file_fails_cleanly_and_caches_nothing(tmp_path, monkeypatch, fresh_cache, offline):
    mirror = tmp_path / "mirror"
    target = mirror / "github.com/danielzuegner/gnn-meta-attack/raw/master/data/cora_ml.npz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"this is not an npz file")
    monkeypatch.setenv("GRAPHTRUST_MIRROR", str(mirror))
    with pytest.raises(datasets.DatasetCorruptError, match=r"(?s)cora_ml\.npz.*mirror.*Nothing was written"):
        datasets.load("cora_ml")
    assert not any(p.is_file() for p in fresh_cache.rglob("*"))


def test_sbm_is_exact_seeded_and_homophilous():
    a = datasets.load("sbm", num_nodes=3000, num_classes=4, avg_degree=6, homophily=0.9, seed=1)
    b = datasets.load("sbm", num_nodes=3000, num_classes=4, avg_degree=6, homophily=0.9, seed=1)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert num_undirected_edges(a.edge_index) == 9000
    assert a.is_undirected() and not a.has_self_loops()
    same = (a.y[a.edge_index[0]] == a.y[a.edge_index[1]]).float().mean()
    assert 0.85 < float(same) < 0.95
    # class-correlated features: class means differ more than the noise would allow
    means = torch.stack([a.x[a.y == c].mean(0) for c in range(4)])
    assert float(torch.cdist(means, means).max()) > 3.0
    c = datasets.load("sbm", num_nodes=3000, num_classes=4, avg_degree=6, homophily=0.9, seed=2)
    assert not torch.equal(a.edge_index, c.edge_index)


def test_sbm_heavy_tail_is_capped():
    g = datasets.load("sbm", num_nodes=20000, avg_degree=10, degree_exponent=2.2, max_degree=300, seed=0)
    deg = torch.bincount(g.edge_index[0], minlength=g.num_nodes).numpy()
    assert deg.max() > 5 * np.median(deg)  # a real tail ...
    assert deg.max() < 2 * 300  # ... that stays near the cap


def test_sbm_bad_input():
    with pytest.raises(ValueError, match="homophily"):
        datasets.sbm_graph(homophily=1.5)
    with pytest.raises(ValueError, match="avg_degree"):
        datasets.sbm_graph(num_nodes=10, avg_degree=20)
