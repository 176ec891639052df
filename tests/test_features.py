"""The feature cache: which layers are a fixed feature, the cache's keys and memory bound, and runs on it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_layers

from hebbcore.features import FeatureCache, frozen_prefix_cut
from hebbcore.spec import parse_spec


def frozen_conv_net(registry):
    """A frozen conv1 (relu, pool, batch-norm, flatten) under an SGD classifier, with 60/20/20 synthetic images."""
    from hebbcore.network import Network
    from hebbcore.runner import load_dataset, make_backend

    table = {
        "data": {"source": "synthetic", "options": {"n_train": 60, "n_val": 20, "n_test": 20, "size": 8}},
        "layers": tiny_layers({"conv1": "frozen", "clf": "sgd"}),
    }
    spec = parse_spec(table, registry)
    data = load_dataset(spec, registry)
    return Network(spec, data.input_shape, data.n_classes, make_backend(registry, "numpy"), registry), data


def test_feature_cache_extends_a_shallower_prefix(registry):
    """Features of conv1..flat are derived from cached conv1..pool1 ones, and equal a direct computation."""
    net, data = frozen_conv_net(registry)
    cache = FeatureCache(max_entries=3)
    shallow = cache.features(net, 3, data, "k")
    assert shallow.train.x.shape == (60, 8, 3, 3) and cache.extended == 0
    deep = cache.features(net, 5, data, "k")
    assert cache.extended == 1 and deep.train.x.shape == (60, 72)
    direct = FeatureCache().features(net, 5, data, "k")
    np.testing.assert_allclose(deep.test.x, direct.test.x, rtol=1e-5, atol=1e-6)
    assert cache.features(net, 5, data, "k") is deep and cache.hits == 1
    assert cache.features(net, 5, data, "other data") is not deep


def test_feature_cache_memory_bound(registry):
    """Features over the bound are not cached (and say why); entries are evicted to keep the total under it."""
    net, data = frozen_conv_net(registry)
    one = 100 * 72 * 4  # bytes of the conv1..flat features of 100 images
    small = FeatureCache(max_bytes=one - 1)
    assert small.features(net, 5, data, "k") is None
    assert "HEBBCORE_FEATURE_CACHE_BYTES" in small.too_large and not small.entries
    cache = FeatureCache(max_entries=4, max_bytes=one + one // 2)
    cache.features(net, 5, data, "a")
    held = []  # what the cache holds while it computes the next entry
    forward = net.layer_forward
    net.layer_forward = lambda *a, **k: (
        held.append(sum(map(FeatureCache.nbytes, cache.entries.values()))),
        forward(*a, **k),
    )[1]
    cache.features(net, 5, data, "b")  # two entries would exceed the bound: the older one goes, before computing
    assert held and max(held) + one <= cache.max_bytes
    assert len(cache.entries) == 1 and cache.too_large == ""
    assert FeatureCache.nbytes(next(iter(cache.entries.values()))) == one
    cache = mirrored = FeatureCache(max_entries=4, max_bytes=2 * one)  # 100 images + 60 mirrored: one entry only
    mirrored.features(net, 5, data, "a", mirrored=True)
    assert FeatureCache.nbytes(next(iter(mirrored.entries.values()))) == one + 60 * 72 * 4
    held.clear()
    mirrored.features(net, 5, data, "b", mirrored=True)
    assert max(held) + one + 60 * 72 * 4 <= mirrored.max_bytes and len(mirrored.entries) == 1


@pytest.mark.parametrize(
    "modes, expected",
    [
        (("frozen", "sgd"), 5),  # conv1, relu, pool, bn, flatten computed once
        (("random", "sgd"), 3),  # stops at the batch-norm above a random layer
        (("sgd", "sgd"), 0),
        (("frozen", "frozen"), 0),  # nothing trains above
    ],
)
@pytest.mark.parametrize("input_bn", [False, True])
def test_frozen_prefix_cut(registry, modes, expected, input_bn):
    layers = tiny_layers({"conv1": modes[0], "clf": modes[1]})
    if input_bn:  # a batch-norm of the input goes with the first trainable layer
        layers = [{"name": "bn0", "type": "batchnorm"}, {"name": "pad0", "type": "pad", "padding": 1}] + layers
        expected = expected + 2 if modes[0] == "frozen" and expected else 0
    spec = parse_spec({"layers": layers, "sgd": {"epochs": 1}}, registry)
    assert frozen_prefix_cut(spec) == expected


@pytest.mark.parametrize(("phases", "expected"), [(["sgd"], 5), (["hebbian", "sgd"], 0)])
def test_a_hebbian_layer_without_a_hebbian_phase_is_a_fixed_feature(registry, phases, expected):
    """A probe of Hebbian weights (``init_weights``, no Hebbian phase) caches them like frozen ones."""
    layers = tiny_layers({"conv1": "hebbian", "clf": "sgd"})
    spec = parse_spec({"layers": layers, "phases": phases, "sgd": {"epochs": 1}}, registry)
    assert frozen_prefix_cut(spec) == expected


def test_frozen_prefix_stops_at_an_sgd_trained_batchnorm(registry):
    layers = tiny_layers({"conv1": "frozen", "clf": "sgd"})
    layers.insert(5, {"name": "bnf", "type": "batchnorm", "train": "sgd"})  # after the flatten, trained by SGD
    assert frozen_prefix_cut(parse_spec({"layers": layers, "sgd": {"epochs": 1}}, registry)) == 5


def test_frozen_batchnorm_above_a_random_layer(registry):
    """A frozen batch-norm over a random layer is a fixed feature: cached, and kept at its statistics by SGD."""
    from hebbcore.network import Network
    from hebbcore.runner import load_dataset, make_backend
    from hebbcore.sgd import SgdPhase

    layers = tiny_layers({"conv1": "random", "clf": "sgd"})
    layers[3]["train"] = "frozen"
    data = {"source": "synthetic", "options": {"n_train": 64, "n_val": 16, "n_test": 16, "size": 8}}
    spec = parse_spec({"layers": layers, "data": data, "sgd": {"epochs": 1, "batch_size": 16}}, registry)
    assert frozen_prefix_cut(spec) == 5
    ds = load_dataset(spec, registry)
    net = Network(spec, ds.input_shape, ds.n_classes, make_backend(registry, "numpy"), registry)
    before = net.state_dict()
    SgdPhase(net, ds, seed=0).run(progress=False)
    after = net.state_dict()
    for k in ("bn1.running_mean", "bn1.running_var", "bn1.weight", "bn1.bias", "conv1.weight"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert not np.array_equal(after["clf.weight"], before["clf.weight"])


PROBE = {
    "name": "probe",
    "phases": ["sgd"],
    "data": {"source": "synthetic", "options": {"n_train": 96, "n_val": 24, "n_test": 24, "size": 8}},
    "sgd": {"epochs": 2, "batch_size": 16, "lr": 0.05, "hflip": True},
    "layers": tiny_layers({"conv1": "frozen", "clf": "sgd"}),
}


def test_a_run_on_cached_features_equals_one_through_every_layer(tmp_path, registry):
    """The frozen prefix computed once (mirror images too) or on every batch: the same weights, accuracies and
    files; the cached run's weights.npz, spec.toml and result describe the whole network."""
    from hebbcore.runner import run

    spec = parse_spec(PROBE, registry)
    plain = run(spec, registry, out_dir=tmp_path / "plain", progress=False)
    cached = run(spec, registry, out_dir=tmp_path / "cached", progress=False, features=FeatureCache())
    assert {k: cached.metrics["feature_cache"][k] for k in ("trains_from", "input_shape")} == {
        "trains_from": "clf",
        "input_shape": [72],
    }
    assert "feature_cache" not in plain.metrics
    assert (tmp_path / "cached" / "spec.toml").read_text() == (tmp_path / "plain" / "spec.toml").read_text()
    with np.load(tmp_path / "plain" / "weights.npz") as p, np.load(tmp_path / "cached" / "weights.npz") as c:
        assert sorted(p.files) == sorted(c.files)
        for k in p.files:
            np.testing.assert_allclose(c[k], p[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for k in ("train_acc", "val_acc", "test_acc"):
        assert cached.metrics["final"][k] == plain.metrics["final"][k]
    images = cached.dataset.test.x
    assert images.shape[1:] == (3, 8, 8)  # the images given, not the features
    np.testing.assert_array_equal(cached.network.predict(images), plain.network.predict(images))


def test_runs_on_one_cache_share_the_features_of_the_same_frozen_layers(tmp_path, registry):
    from hebbcore.runner import run

    cache, notes = FeatureCache(), []
    spec = parse_spec(PROBE, registry)
    run(spec, registry, out_dir=tmp_path / "a", progress=False, features=cache, log=notes.append)
    assert cache.hits == 0 and notes == ["probe: layers up to flat frozen; training the rest on cached features (72,)"]
    other_lr = parse_spec({**PROBE, "sgd": {**PROBE["sgd"], "lr": 0.01}}, registry)
    run(other_lr, registry, out_dir=tmp_path / "b", progress=False, features=cache)
    assert cache.hits == 1
    other_seed = parse_spec({**PROBE, "seed": 9}, registry)  # other initial weights of the frozen conv1
    run(other_seed, registry, out_dir=tmp_path / "c", progress=False, features=cache)
    assert cache.hits == 1 and len(cache.entries) == 2


def test_features_over_the_budget_run_through_every_layer_and_say_so(tmp_path, registry):
    from hebbcore.runner import run

    notes: list[str] = []
    spec = parse_spec(PROBE, registry)
    result = run(spec, registry, out_dir=tmp_path, progress=False, features=FeatureCache(max_bytes=1000),
                 log=notes.append)  # fmt: skip
    assert "feature_cache" not in result.metrics
    assert len(notes) == 1 and "not caching the frozen layers' output" in notes[0]
    assert "HEBBCORE_FEATURE_CACHE_BYTES" in notes[0]


def test_a_probe_that_cannot_be_cached_says_why(tmp_path, registry):
    from hebbcore.runner import run

    notes: list[str] = []
    spec = parse_spec({**PROBE, "sgd": {**PROBE["sgd"], "crop_padding": 2}}, registry)
    result = run(spec, registry, out_dir=tmp_path, progress=False, features=FeatureCache(), log=notes.append)
    assert "feature_cache" not in result.metrics
    assert notes == ["probe: not caching the frozen layers' output: random crops (sgd.crop_padding) need the images "
                     "themselves; they run on every batch (slower)"]  # fmt: skip


def test_resuming_a_finished_cached_run_is_refused_before_any_feature_is_computed(tmp_path, registry, monkeypatch):
    from hebbcore.errors import HebbcoreError
    from hebbcore.runner import run

    spec = parse_spec(PROBE, registry)
    run(spec, registry, out_dir=tmp_path, progress=False, features=FeatureCache())

    def no(*args, **kwargs):
        raise AssertionError("features computed")

    monkeypatch.setattr(FeatureCache, "features", no)
    with pytest.raises(HebbcoreError, match="the run is finished"):
        run(spec, registry, out_dir=tmp_path, progress=False, features=FeatureCache(), resume=True)


def test_the_cache_budget_from_the_environment_is_checked(monkeypatch):
    from hebbcore.errors import HebbcoreError
    from hebbcore.features import feature_cache_bytes

    monkeypatch.setenv("HEBBCORE_FEATURE_CACHE_BYTES", "4e9")
    assert feature_cache_bytes() == 4_000_000_000 == FeatureCache().max_bytes
    monkeypatch.setenv("HEBBCORE_FEATURE_CACHE_BYTES", "4GB")
    with pytest.raises(HebbcoreError, match=r"^HEBBCORE_FEATURE_CACHE_BYTES: expected a whole number of bytes"):
        FeatureCache()


class Stop(BaseException):
    pass


def test_a_cached_run_cut_short_resumes_on_the_cache_and_only_there(tmp_path, registry, monkeypatch):
    from hebbcore.errors import HebbcoreError
    from hebbcore.rundir import RunDir
    from hebbcore.runner import run

    spec = parse_spec(PROBE, registry)
    whole = run(spec, registry, out_dir=tmp_path / "whole", progress=False, features=FeatureCache())
    original, saves = RunDir.save_checkpoint, {"n": 0}

    def stop_after_the_first_epoch(self, *args):
        original(self, *args)
        saves["n"] += 1
        if saves["n"] == 2:  # a mid-epoch checkpoint, then the first epoch's end
            raise Stop

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_after_the_first_epoch)
    with pytest.raises(Stop):
        run(spec, registry, out_dir=tmp_path / "cut", progress=False, checkpoint_every=4, features=FeatureCache())
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    with np.load(tmp_path / "cut" / "weights.npz") as w:  # a checkpoint's weights.npz holds the frozen layers too
        assert "conv1.weight" in w.files and "clf.weight" in w.files
    with pytest.raises(HebbcoreError, match="trained on cached features of its frozen layers, and would now train "
                       "through all its layers"):  # fmt: skip
        run(spec, registry, out_dir=tmp_path / "cut", progress=False, resume=True)
    resumed = run(spec, registry, out_dir=tmp_path / "cut", progress=False, resume=True, features=FeatureCache())
    for k, v in whole.network.state_dict().items():
        np.testing.assert_array_equal(resumed.network.state_dict()[k], v, err_msg=k)


def test_dropout_above_the_cache_draws_the_masks_an_uncached_run_draws(tmp_path, registry):
    """The SGD phase seeds its random stream after building its modules, so a network of fewer modules (the layers
    above the cache) draws the same dropout masks."""
    from hebbcore.runner import run

    layers = tiny_layers({"conv1": "frozen", "clf": "sgd"})
    layers.insert(5, {"name": "drop", "type": "dropout", "p": 0.5})
    spec = parse_spec({**PROBE, "layers": layers}, registry)
    plain = run(spec, registry, out_dir=tmp_path / "plain", progress=False)
    cached = run(spec, registry, out_dir=tmp_path / "cached", progress=False, features=FeatureCache())
    assert cached.metrics["feature_cache"]["trains_from"] == "drop"
    for k, v in plain.network.state_dict().items():
        np.testing.assert_allclose(cached.network.state_dict()[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_the_cache_key_holds_the_seed_and_the_data(tmp_path, registry):
    """Sources split and draw their images by the seed: frozen layers of the same weights on another seed's
    images are other features."""
    from hebbcore.runner import run

    first = run(parse_spec(PROBE, registry), registry, out_dir=tmp_path / "w", progress=False)
    table = {**PROBE, "init_weights": str(tmp_path / "w" / "weights.npz")}  # the same frozen conv1 for every seed
    cache = FeatureCache()
    run(parse_spec(table, registry), registry, out_dir=tmp_path / "a", progress=False, features=cache)
    other = parse_spec({**table, "seed": 5}, registry)
    cached = run(other, registry, out_dir=tmp_path / "b", progress=False, features=cache)
    assert cache.hits == 0 and len(cache.entries) == 2
    plain = run(other, registry, out_dir=tmp_path / "c", progress=False)
    assert cached.metrics["final"] == plain.metrics["final"] and first.metrics["final"] != plain.metrics["final"]


@pytest.mark.parametrize("bn_train", ["frozen", None])
def test_a_hebbian_layer_above_the_cache_sees_what_it_sees_without(tmp_path, registry, bn_train):
    """Under a Hebbian phase a batch-norm marked frozen keeps its statistics (cached with the layers below it);
    one left to the phase learns them (the cache stops below it). Either way the run equals an uncached one."""
    from hebbcore.runner import run

    layers = tiny_layers({"conv1": "random", "clf": "sgd"})
    if bn_train:
        layers[3]["train"] = bn_train
    layers.insert(4, {"name": "conv2", "type": "conv", "out_channels": 6, "kernel_size": 2, "hebbian": {"rule": "wta"}})
    table = {**PROBE, "phases": ["hebbian", "sgd"], "hebbian": {"epochs": 1, "batch_size": 16}, "layers": layers}
    spec = parse_spec(table, registry)
    plain = run(spec, registry, out_dir=tmp_path / "plain", progress=False)
    cached = run(spec, registry, out_dir=tmp_path / "cached", progress=False, features=FeatureCache())
    assert cached.metrics["feature_cache"]["trains_from"] == ("conv2" if bn_train else "bn1")
    for k, v in plain.network.state_dict().items():
        np.testing.assert_allclose(cached.network.state_dict()[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    start = parse_spec(table, registry)  # the initial statistics: mean 0, variance 1
    kept = np.array_equal(plain.network.state_dict()["bn1.running_mean"], np.zeros(8))
    assert kept == (bn_train == "frozen"), start.name


def test_a_cached_run_resumes_only_on_the_features_it_started_with(tmp_path, registry, monkeypatch):
    from hebbcore.errors import HebbcoreError
    from hebbcore.rundir import RunDir
    from hebbcore.runner import run

    run(parse_spec(PROBE, registry), registry, out_dir=tmp_path / "w", progress=False)
    table = {**PROBE, "init_weights": str(tmp_path / "w" / "init.npz")}
    with np.load(tmp_path / "w" / "weights.npz") as w:
        np.savez(tmp_path / "w" / "init.npz", **{"conv1.weight": w["conv1.weight"]})
    original = RunDir.save_checkpoint

    def stop(self, *args):
        original(self, *args)
        raise Stop

    monkeypatch.setattr(RunDir, "save_checkpoint", stop)
    with pytest.raises(Stop):
        run(parse_spec(table, registry), registry, out_dir=tmp_path / "r", progress=False, features=FeatureCache())
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    np.savez(tmp_path / "w" / "init.npz", **{"conv1.weight": np.zeros((8, 3, 3, 3), np.float32) + 0.5})
    with pytest.raises(HebbcoreError, match="frozen layers' weights or its data differ from those it started with"):
        run(parse_spec(table, registry), registry, out_dir=tmp_path / "r", progress=False, resume=True,
            features=FeatureCache())  # fmt: skip
