"""``hebbcore bench`` on tiny sizes: the JSON it writes and the table it prints (structure only, no timings)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from hebbcore.cli import main
from hebbcore.lab import machine
from hebbcore.lab.bench import Target, floor_step, format_table, parse_targets, run_bench


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_parse_targets():
    assert parse_targets(None) == [Target("numpy", "cpu"), Target("torch", "cpu")]
    assert parse_targets(["torch:cuda,cupy"]) == [Target("torch", "cuda"), Target("cupy", "cuda")]
    assert parse_targets(["torch"], device="cuda:1") == [Target("torch", "cuda:1")]


def _check_record(rec, n_images, with_sgd):
    assert rec["n_images"] == n_images and rec["batch_size"] == 4
    for kind in ("hebbian", "forward", "floor") + (("sgd",) if with_sgd else ()):
        r = rec[kind]
        assert set(r) == {"seconds", "images_per_s", "all_seconds", "cpu_seconds"}
        assert len(r["all_seconds"]) == 2 and r["seconds"] == min(r["all_seconds"]) > 0
        assert r["images_per_s"] == pytest.approx(n_images / r["seconds"])
        assert r["cpu_seconds"] > 0  # this process's CPU time (more than the wall time with several threads)
    assert isinstance(rec["peak_step_bytes"], int) and rec["peak_step_bytes"] > 0
    assert isinstance(rec["peak_step_method"], str)
    assert set(rec["ratios"]) == {"hebbian_vs_forward", "hebbian_vs_forward_cpu_time", "hebbian_vs_floor"} | (
        {"hebbian_vs_sgd"} if with_sgd else set()
    )
    assert rec["ratios"]["hebbian_vs_forward_cpu_time"] == pytest.approx(
        rec["forward"]["cpu_seconds"] / rec["hebbian"]["cpu_seconds"]
    )
    assert rec["ratios"]["hebbian_vs_forward"] == pytest.approx(
        rec["hebbian"]["images_per_s"] / rec["forward"]["images_per_s"]
    )
    assert all(isinstance(v, bool) for v in rec["targets_met"].values())
    assert "peak_step_under_1GiB" in rec["targets_met"]


def test_run_bench_structure(registry):
    with_sgd = _torch_available()
    targets = [Target("numpy", "cpu")] + ([Target("torch", "cpu")] if with_sgd else [])
    logs = []
    result = run_bench(targets, registry, n_images=10, batch_size=4, warmup=1, repeats=2, log=logs.append)
    json.loads(json.dumps(result))  # JSON-ready
    assert {"command", "date", "machine", "versions", "settings", "results", "comparisons"} <= set(result)
    assert result["versions"]["numpy"] == np.__version__
    assert {"platform", "cpu", "cpu_count"} <= set(result["machine"])
    assert [r["backend"] for r in result["results"]] == [t.backend for t in targets]
    for rec in result["results"]:
        _check_record(rec, 10, with_sgd)
    if with_sgd:
        assert result["results"][0]["sgd_device"] == "cpu"
        assert set(result["comparisons"]) == {"torch_cpu_over_numpy_hebbian", "numpy_within_3x_of_torch_cpu"}
    table = format_table(result)
    assert "hebbian img/s" in table and "numpy" in table
    assert logs


def test_unavailable_backend_is_reported_not_raised(registry):
    result = run_bench([Target("numpy", "cuda")], registry, n_images=4, batch_size=4, warmup=0, log=lambda s: None)
    assert "error" in result["results"][0]
    assert "error" in format_table(result)


def test_forward_step_is_the_hebbian_layers_forward_pass(registry):
    """The forward-only column runs the Hebbian layers' forward pass (batch statistics), no update."""
    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, forward_step
    from hebbcore.network import Network

    ops = registry.get("backend", "numpy")()
    net = Network(bench_spec("HGGGGG", registry, 4, 0), INPUT_SHAPE, N_CLASSES, ops, registry)
    before = {k: v.copy() for k, v in net.state_dict().items() if k.endswith("weight")}
    seen = []
    original = net.layer_forward
    net.layer_forward = lambda node, x, batch_stats: seen.append((node.name, batch_stats)) or original(node, x, True)
    forward_step(net, np.random.default_rng(0).standard_normal((3, *INPUT_SHAPE), dtype=np.float32))
    assert seen == [("conv1", True)]  # only conv1 is Hebbian in HGGGGG: nothing above it runs
    assert all(np.array_equal(before[k], net.state_dict()[k]) for k in before)


def test_floor_step_leaves_weights_alone(registry):
    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec
    from hebbcore.network import Network

    ops = registry.get("backend", "numpy")()
    net = Network(bench_spec("HHHHHH", registry, 4, 0), INPUT_SHAPE, N_CLASSES, ops, registry)
    before = {k: v.copy() for k, v in net.state_dict().items() if k.endswith("weight")}
    floor_step(net, np.random.default_rng(0).standard_normal((3, *INPUT_SHAPE), dtype=np.float32))
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_cli_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = main(
        [
            "bench",
            "--backend",
            "numpy",
            "--images",
            "6",
            "--batch-size",
            "4",
            "--warmup",
            "1",
            "--skip",
            "sgd",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    rec = data["results"][0]
    assert rec["backend"] == "numpy" and "sgd" not in rec and "floor" in rec and "hebbian" in rec
    assert data["settings"]["skip"] == ["sgd"] and data["settings"]["batch_size"] == 4
    assert "hebbcore bench" in data["command"]
    from hebbcore import allocator

    tuning = data["machine"]["malloc_tuning"]  # what the command did to malloc, for the record
    if allocator._glibc() is not None and allocator.ENV_VAR not in os.environ:
        assert tuning["applied"] is True and tuning["mmap_threshold_bytes"] == allocator.MMAP_THRESHOLD_BYTES
    else:
        assert tuning["applied"] is False and tuning["reason"]
    printed = capsys.readouterr().out
    assert "numpy" in printed
    blas = data["machine"]["numpy_blas"]  # which BLAS kernels numpy ran, and what in the environment forced them
    assert blas["env"] == {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    if blas["openblas_core"] is not None:
        assert f"{blas['openblas_core']} kernels" in printed
    kernels = data["machine"]["cpu_kernels"]  # whether the compiled kernels ran, and why not
    assert kernels == machine.cpu_kernels_line() and f"compiled CPU kernels (numpy, torch-cpu): {kernels}" in printed
    numba_on = data["versions"]["numba"] is not None and os.environ.get("HEBBCORE_NUMBA") != "0"
    assert kernels.startswith("on (numba ") == numba_on


def test_the_cpu_kernels_line_says_why_they_are_off(monkeypatch):
    monkeypatch.setenv("HEBBCORE_NUMBA", "0")
    assert machine.cpu_kernels_line() == "off (HEBBCORE_NUMBA=0)"
    monkeypatch.delenv("HEBBCORE_NUMBA")
    monkeypatch.setitem(sys.modules, "numba", None)
    assert machine.cpu_kernels_line() == "off (numba is not installed)"


_BLAS_OF_CHILD = (
    "import json, numpy; from hebbcore.lab.machine import numpy_blas, blas_line; "
    "b = numpy_blas(); print(json.dumps([b, blas_line(b)]))"
)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


@pytest.mark.skipif("avx2" not in _cpu_flags(), reason="needs an x86 processor with AVX2 (Linux)")
def test_numpy_blas_names_the_kernels_and_what_forced_them():
    import subprocess
    import sys

    def child(coretype):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
        env.update({"OPENBLAS_CORETYPE": coretype} if coretype else {})
        out = subprocess.run(
            [sys.executable, "-c", _BLAS_OF_CHILD], capture_output=True, text=True, check=True, env=env
        )
        return json.loads(out.stdout)

    own, own_line = child(None)
    if own["openblas_core"] is None:
        pytest.skip("numpy's BLAS here is not an OpenBLAS that names its kernels")
    assert own["env"] == {} and "OpenBLAS's own choice" in own_line
    forced, forced_line = child("Haswell")
    assert forced["openblas_core"] == "Haswell"
    assert forced["env"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert "Haswell kernels (forced by OPENBLAS_CORETYPE=Haswell" in forced_line


def test_cli_bench_rejects_bad_skip(capsys):
    assert main(["bench", "--skip", "everything"]) == 2
    assert "bench" in capsys.readouterr().err


def test_the_softhebb_comparison_times_both_steps(registry):
    pytest.importorskip("torch")
    from hebbcore.lab.bench import bench_target

    rec = bench_target(Target("numpy", "cpu"), registry, 8, batch_size=4, warmup=1, repeats=2, seed=0,
                       skip=("floor", "sgd", "memory"), log=lambda s: None, softhebb_images=20)  # fmt: skip
    sh = rec["softhebb"]
    assert sh["n_images"] == 20 and sh["batch_size"] == 10 and sh["plain_device"] == "cpu"
    for kind in ("hebbcore", "plain"):
        assert len(sh[kind]["all_seconds"]) == 2 and sh[kind]["images_per_s"] == pytest.approx(20 / sh[kind]["seconds"])
    assert sh["ratio"] == pytest.approx(sh["hebbcore"]["images_per_s"] / sh["plain"]["images_per_s"])
    assert rec["targets_met"]["softhebb_ge_1x_plain_pytorch"] == (sh["ratio"] >= 1.0)
    assert "SoftHebb net (batch 10, 20 images)" in format_table({"results": [rec], "comparisons": {}})


def test_the_dense_rules_are_timed_against_their_floors(registry, monkeypatch):
    from hebbcore.lab import bench_dense
    from hebbcore.lab.bench import bench_target, markdown_table
    from hebbcore.lab.bench_dense import DENSE_PRESETS

    monkeypatch.setattr(bench_dense, "MIN_EPOCH_S", 0.0)  # the images asked for, in whole batches
    rec = bench_target(Target("numpy", "cpu"), registry, 4, batch_size=4, warmup=1, repeats=2, seed=0,
                       skip=("forward", "floor", "sgd", "memory"), log=lambda s: None, dense_images=12)  # fmt: skip
    nets = rec["dense"]["nets"]
    assert set(nets) == {"softhebb", "krotov", "hpca"} and rec["dense"]["n_images"] == 12
    for rule, d in nets.items():
        assert d["preset"] == DENSE_PRESETS[rule].name
        for kind in ("hebbian", "forward", "floor"):
            assert len(d[kind]["all_seconds"]) == 2 and d[kind]["seconds"] == min(d[kind]["all_seconds"])
        assert d["hebbian_vs_floor"] == pytest.approx(d["hebbian"]["images_per_s"] / d["floor"]["images_per_s"])
        assert rec["targets_met"][f"{rule}_net_ge_0.9x_floor"] == (d["hebbian_vs_floor"] >= 0.9)
    assert nets["softhebb"]["batch_size"] == 10 and nets["krotov"]["input_shape"] == [1, 28, 28]
    assert nets["krotov"]["n_images"] == 100 and nets["softhebb"]["n_images"] == 20  # whole batches
    assert "krotov net (krotov_mnist.toml, batch 100, 100 images)" in format_table(
        {"results": [rec], "comparisons": {}}
    )
    assert "| numpy | hpca | lagani_hpca_cifar10.toml |" in markdown_table({"results": [rec]})


def test_a_fast_dense_net_gets_enough_images_for_a_measurable_epoch(registry, monkeypatch):
    """Krotov's net at batch 100 takes a few ms per step: 100 images would time noise, so it gets as many whole
    batches as an epoch of MIN_EPOCH_S takes at the speed of three steps timed after the warm-up, up to
    MAX_IMAGES."""
    from hebbcore.lab import bench_dense

    monkeypatch.setattr(bench_dense, "MIN_EPOCH_S", 0.2)
    monkeypatch.setattr(bench_dense, "DENSE_PRESETS", {"krotov": bench_dense.DENSE_PRESETS["krotov"]})
    ops = registry.get("backend", "numpy")()
    d = bench_dense.dense_rules_comparison(ops, registry, 12, 1, 1, 0, lambda s: None)["nets"]["krotov"]
    assert d["n_images"] > 100 and d["n_images"] % 100 == 0, d["n_images"]
    assert d["hebbian"]["images_per_s"] == pytest.approx(d["n_images"] / d["hebbian"]["seconds"])
    monkeypatch.setattr(bench_dense, "MAX_IMAGES", 250)  # whole batches under the cap
    d = bench_dense.dense_rules_comparison(ops, registry, 12, 1, 1, 0, lambda s: None)["nets"]["krotov"]
    assert d["n_images"] == 200


def test_a_dense_preset_that_cannot_run_is_recorded_not_raised(registry, monkeypatch, tmp_path):
    from hebbcore.lab import bench_dense
    from hebbcore.lab.bench import bench_target, markdown_table

    monkeypatch.setattr(bench_dense, "DENSE_PRESETS", {"softhebb": tmp_path / "missing.toml"})
    rec = bench_target(Target("numpy", "cpu"), registry, 4, batch_size=4, warmup=0, repeats=1, seed=0,
                       skip=("forward", "floor", "sgd", "memory"), log=lambda s: None, dense_images=4)  # fmt: skip
    d = rec["dense"]["nets"]["softhebb"]
    assert d["preset"] == "missing.toml" and "missing.toml" in d["error"]
    assert rec["targets_met"]["softhebb_net_ge_0.9x_floor"] is False
    assert "softhebb net (missing.toml): error:" in format_table({"results": [rec], "comparisons": {}})
    assert "missing.toml" not in markdown_table({"results": [rec]})


def test_the_whole_run_measurement_adds_up(registry):
    pytest.importorskip("torch")
    from hebbcore.lab.bench import bench_target

    rec = bench_target(Target("numpy", "cpu"), registry, 8, batch_size=4, warmup=0, repeats=1, seed=0,
                       skip=("forward", "floor", "sgd", "memory"), log=lambda s: None, run_images=100)  # fmt: skip
    rr = rec["run"]
    assert rr["n_images"] == 100 and rr["wall_s"] > rr["epochs_s"] > 0 and rr["loading_s"] > 0
    assert rr["ratio"] == pytest.approx(rr["wall_s"] / (rr["epochs_s"] + rr["loading_s"]))
    assert rec["targets_met"]["run_within_1.3x_epochs_and_loading"] == (rr["ratio"] <= 1.3)
