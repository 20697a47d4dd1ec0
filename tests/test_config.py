import pytest
import torch

from graphtrust import config


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("GRAPHTRUST_PROFILE", raising=False)
    assert config.profile_name() == ("full" if torch.cuda.is_available() else "quick")


@pytest.mark.parametrize("value,expected", [("quick", "quick"), ("FULL", "full"), (" full ", "full")])
def test_profile_from_env(monkeypatch, value, expected):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", value)
    assert config.profile_name() == expected


def test_invalid_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "fast")
    with pytest.raises(config.ConfigError, match="'fast' is not a profile.*quick, full"):
        config.profile_name()


def test_sizes_follow_the_profile(monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "quick")
    quick = config.sizes("foundations")
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "full")
    full = config.sizes("foundations")
    assert quick.profile == "quick" and full.profile == "full"
    assert len(full.seeds) > len(quick.seeds)
    assert quick.epochs == quick["epochs"]
    with pytest.raises(AttributeError, match="has no size 'nope'"):
        _ = quick.nope


def test_every_chapter_names_the_same_sizes_in_both_profiles():
    for chapter in config._SIZES:
        q, f = config.sizes(chapter, "quick"), config.sizes(chapter, "full")
        assert set(q) == set(f), chapter
        assert "runtime" in q


def test_register_sizes_rejects_mismatched_keys():
    with pytest.raises(config.ConfigError, match="same keys"):
        config.register_sizes("x", quick={"a": 1}, full={"b": 2})


def test_unknown_chapter():
    with pytest.raises(KeyError, match="unknown chapter 'nope'"):
        config.sizes("nope")


def test_mirror_unset_and_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHTRUST_MIRROR", raising=False)
    assert config.mirror_dir() is None
    monkeypatch.setenv("GRAPHTRUST_MIRROR", str(tmp_path / "nope"))
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.mirror_dir()
    monkeypatch.setenv("GRAPHTRUST_MIRROR", str(tmp_path))
    assert config.mirror_dir() == tmp_path.resolve()


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHTRUST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "graphtrust"
    monkeypatch.setenv("GRAPHTRUST_CACHE", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_seed_everything_repeats():
    config.seed_everything(3)
    a = torch.rand(5)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(5))
    with pytest.raises(ValueError):
        config.seed_everything(-1)


def test_device_override(monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("GRAPHTRUST_DEVICE", "banana")
    with pytest.raises(config.ConfigError, match="not a torch device"):
        config.device()


def test_banner_states_profile_device_runtime(monkeypatch):
    monkeypatch.setenv("GRAPHTRUST_PROFILE", "quick")
    monkeypatch.delenv("GRAPHTRUST_DEVICE", raising=False)
    text = str(config.banner("foundations"))
    assert "profile : quick (set by GRAPHTRUST_PROFILE)" in text
    assert "device" in text and "expected run time" in text


def test_runs_record_the_code_version_they_were_measured_with():
    import shutil
    import subprocess
    from pathlib import Path

    v = config.code_version()
    assert config.provenance()["code"] == v
    src = Path(config.__file__).resolve().parent
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=src, capture_output=True).returncode:
        assert v is None or v.startswith("graphtrust ")
        return
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=src, capture_output=True, text=True).stdout.strip()
    assert v in (head, head + "+dirty")
