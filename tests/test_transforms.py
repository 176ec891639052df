"""The transforms: per-channel normalisation and ZCA whitening (fit, apply, disk cache)."""

from __future__ import annotations

import numpy as np
import pytest

from hebbcore.interfaces import Dataset, Split
from hebbcore.spec import parse_spec
from hebbcore_plugins.data.transforms import Normalize, NormalizeOptions, Zca, ZcaOptions, fit_zca

# ------------------------------------------------------------------------------------------- transforms


def toy_dataset(n=3000, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((48, 48))
    x = (rng.standard_normal((n, 48)) @ mix * 3 + 5).reshape(n, 3, 4, 4).astype(np.float32)
    y = rng.integers(0, 10, n)
    return Dataset("toy", Split(x[:2000], y[:2000]), Split(x[2000:2500], y[2000:2500]), Split(x[2500:], y[2500:]), 10)


def test_normalize_per_channel():
    d = Normalize().apply(toy_dataset(), NormalizeOptions())
    assert np.allclose(d.train.x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(d.train.x.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert d.val.x.dtype == np.float32 and d.test.x.shape == (500, 3, 4, 4)


def test_zca_whitens_and_caches(tmp_path):
    data = toy_dataset()
    opts = ZcaOptions(eps=0.1, cache_dir=str(tmp_path))
    out = Zca().apply(data, opts)
    assert Zca.last_cache == "miss"
    assert len(list((tmp_path / "zca").glob("*.npz"))) == 1
    flat = out.train.x.reshape(len(out.train.x), -1).astype(np.float64)
    cov = np.cov(flat, rowvar=False, bias=True)
    # eigenvalues λ/(λ+eps) with λ ≫ eps: close to the identity
    assert np.abs(cov - np.eye(48)).max() < 0.05
    assert np.abs(flat.mean(axis=0)).max() < 1e-3
    again = Zca().apply(data, opts)
    assert Zca.last_cache == "hit"
    np.testing.assert_array_equal(again.test.x, out.test.x)
    Zca().apply(data, ZcaOptions(eps=0.2, cache_dir=str(tmp_path)))
    assert Zca.last_cache == "miss"  # eps is part of the key
    mean, w = fit_zca(data.train.x, 0.1)
    assert mean.dtype == np.float64 and w.shape == (48, 48) and np.allclose(w, w.T)


@pytest.mark.parametrize("damage", ["crc", "truncate", "wrong shape"])
def test_a_damaged_zca_cache_entry_is_refitted_and_overwritten(tmp_path, damage):
    data = toy_dataset()
    opts = ZcaOptions(eps=0.1, cache_dir=str(tmp_path))
    first = Zca().apply(data, opts)
    (entry,) = (tmp_path / "zca").glob("*.npz")
    raw = bytearray(entry.read_bytes())
    if damage == "crc":
        raw[len(raw) // 2] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        np.savez(entry, mean=np.zeros(3), w=np.eye(3))
        raw = bytearray(entry.read_bytes())
    entry.write_bytes(bytes(raw))
    again = Zca().apply(data, opts)
    assert Zca.last_cache == "miss"
    np.testing.assert_array_equal(again.test.x, first.test.x)
    Zca().apply(data, opts)
    assert Zca.last_cache == "hit"  # the refit replaced the damaged entry


def test_zca_uncentered_is_the_same_whitening_without_the_mean(tmp_path):
    """``center = false``: W·x (the old torchvision LinearTransformation), the centred output plus the whitened mean."""
    data = toy_dataset()
    centred = Zca().apply(data, ZcaOptions(eps=0.1, cache_dir=str(tmp_path)))
    plain = Zca().apply(data, ZcaOptions(eps=0.1, cache_dir=str(tmp_path), center=False))
    assert Zca.last_cache == "hit"  # the same fit
    mean, w = fit_zca(data.train.x, 0.1)
    shift = (mean @ w).astype(np.float32)
    for split in ("train", "test"):
        a = getattr(centred, split).x.reshape(len(getattr(centred, split).x), -1)
        b = getattr(plain, split).x.reshape(len(getattr(plain, split).x), -1)
        np.testing.assert_allclose(b - a, np.broadcast_to(shift, a.shape), atol=1e-4)
    assert np.abs(shift).max() > 1e-3  # the toy data's mean is not zero, so the two differ


def test_zca_cache_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HEBBCORE_CACHE", str(tmp_path / "c"))
    Zca().apply(toy_dataset(n=2600), ZcaOptions())
    assert len(list((tmp_path / "c" / "zca").glob("*.npz"))) == 1


def test_transforms_in_a_spec(registry):
    table = {
        "data": {
            "source": "synthetic",
            "options": {"n_train": 50, "n_val": 10, "n_test": 10, "size": 8},
            "transforms": [{"name": "normalize"}, {"name": "zca", "options": {"eps": 0.1, "cache": False}}],
        },
        "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 10}],
    }
    spec = parse_spec(table, registry)
    from hebbcore.runner import load_dataset

    d = load_dataset(spec, registry)
    assert d.train.x.shape == (50, 3, 8, 8) and np.isfinite(d.test.x).all()


def test_the_zca_cache_keeps_at_most_its_limit_and_says_so_once(tmp_path, capsys, monkeypatch):
    import os
    import time

    from hebbcore_plugins.data import transforms as tr

    monkeypatch.setattr(tr, "MAX_CACHED", 2)
    monkeypatch.setattr(tr.Zca, "announced", False)
    folder = tmp_path / "zca"
    folder.mkdir()
    for i, name in enumerate(("a.npz", "b.npz")):  # two older entries
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (time.time() - 100 + i, time.time() - 100 + i))
    data = toy_dataset(n=2600)
    Zca().apply(data, ZcaOptions(cache_dir=str(tmp_path)))
    Zca().apply(toy_dataset(n=2600, seed=1), ZcaOptions(cache_dir=str(tmp_path)))
    assert (
        sorted(p.name for p in folder.glob("*.npz"))
        == sorted(  # the two just written; a and b pruned
            p.name for p in folder.glob("*.npz") if p.name not in ("a.npz", "b.npz")
        )
        and len(list(folder.glob("*.npz"))) == 2
    )
    err = capsys.readouterr().err
    assert err.count("cached the ZCA whitening") == 1 and "$HEBBCORE_CACHE moves the cache" in err
