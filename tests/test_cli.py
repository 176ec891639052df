"""The CLI end to end on a small .npz dataset, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from hebbcore_plugins.data.synthetic import SyntheticOptions, make_gratings


def hebbcore(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "hebbcore.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    split = make_gratings(600, SyntheticOptions(size=12, n_classes=4, noise=0.3), np.random.default_rng(0))
    x = np.clip((split.x + 2) / 4 * 255, 0, 255).astype(np.uint8)  # stored as images
    np.savez(d / "grat.npz", x=x, y=split.y)
    return d / "grat.npz"


SPEC = """
name = "npz-e2e"
seed = 2
init_weights = "{init}"
[data]
source = "npz"
[data.options]
path = "{path}"
val_fraction = 0.2
test_fraction = 0.2
[hebbian]
epochs = 2
batch_size = 16
[[layers]]
name = "conv1"
type = "conv"
out_channels = 12
kernel_size = 5
[layers.hebbian]
rule = "wta"
[[layers]]
name = "pool"
type = "pool"
kernel_size = 2
[[layers]]
name = "bn"
type = "batchnorm"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "clf"
type = "linear"
out_features = 4
[layers.hebbian]
rule = "teacher"
"""


def test_run_writes_metrics_weights_and_spec(tmp_path, npz_data, registry):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(path=npz_data, init=""))
    out = tmp_path / "out"
    res = hebbcore("run", spec, "--backend", "numpy", "--out", out)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for e in metrics["epochs"]:
        assert e["phase"] == "hebbian" and e["seconds"] > 0 and e["images_per_s"] > 0
        assert 0 <= e["val_acc"] <= 1 and e["train_acc"] is None and e["test_acc"] is None  # evaluate = ["val"]
    assert metrics["final"]["test_acc"] > 0.5, metrics["final"]  # 4 classes: chance is 0.25
    weights = np.load(out / "weights.npz")
    assert set(weights.files) == {
        "conv1.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "clf.weight",
    }
    assert weights["conv1.weight"].shape == (12, 3, 5, 5)
    # the resolved spec re-runs, and initial weights load from an .npz
    again = tmp_path / "again.toml"
    again.write_text(SPEC.format(path=npz_data, init=out / "weights.npz").replace("epochs = 2", "epochs = 0"))
    res2 = hebbcore("run", again, "--out", tmp_path / "out2")
    assert res2.returncode == 0, res2.stderr
    m2 = json.loads((tmp_path / "out2" / "metrics.json").read_text())
    assert m2["final"] == metrics["final"]  # same weights, same data split: same accuracies
    res3 = hebbcore("run", out / "spec.toml", "--out", tmp_path / "out3")
    assert res3.returncode == 0, res3.stderr


PROBE = """
name = "npz-probe"
phases = ["sgd"]
[data]
source = "npz"
[data.options]
path = "{path}"
val_fraction = 0.2
test_fraction = 0.2
[sgd]
epochs = 2
batch_size = 32
[[layers]]
name = "conv1"
type = "conv"
out_channels = 6
kernel_size = 5
train = "frozen"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "clf"
type = "linear"
out_features = 4
train = "sgd"
"""


class Stop(BaseException):
    pass


def test_feature_cache_on_a_run_with_nothing_fixed_says_so_and_a_bad_budget_is_one_line(tmp_path, monkeypatch):
    spec = tmp_path / "s.toml"
    spec.write_text((REPO / "examples" / "tiny.toml").read_text().replace("n_train = 2000", "n_train = 200"))
    res = hebbcore("run", spec, "--out", tmp_path / "a", "--feature-cache", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "--feature-cache: no layer at the bottom of 'tiny' stays fixed during the run" in res.stderr
    monkeypatch.setenv("HEBBCORE_FEATURE_CACHE_BYTES", "lots")
    res = hebbcore("run", spec, "--out", tmp_path / "b", "--no-progress")  # read only where a cache is made
    assert res.returncode == 0, res.stderr
    res = hebbcore("run", spec, "--out", tmp_path / "c", "--feature-cache")
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == (
        "hebbcore: error: HEBBCORE_FEATURE_CACHE_BYTES: expected a whole number of bytes such as 4000000000 or "
        "4e9, got 'lots'"
    )
    monkeypatch.setenv("HEBBCORE_DEVICE_DATA_BYTES", "4GB")  # read by every run's data placement
    res = hebbcore("run", spec, "--out", tmp_path / "d")
    assert res.returncode == 1 and "HEBBCORE_DEVICE_DATA_BYTES: expected a whole number" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "d").exists()  # said before the folder is claimed


def test_run_on_cached_features_and_its_resume(tmp_path, npz_data, registry, monkeypatch):
    """--feature-cache trains the readout on the frozen layers' output, computed once, to the same result;
    --resume of such a run continues on the cache without being told, to the uninterrupted run's weights."""
    from hebbcore.features import FeatureCache
    from hebbcore.rundir import RunDir
    from hebbcore.runner import run
    from hebbcore.spec import load_spec

    spec = tmp_path / "p.toml"
    spec.write_text(PROBE.format(path=npz_data))
    res = hebbcore("run", spec, "--out", tmp_path / "a", "--feature-cache")
    assert res.returncode == 0, res.stderr
    assert "npz-probe: layers up to flat frozen; training the rest on cached features (384,)" in res.stderr
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert a["feature_cache"]["trains_from"] == "clf" and a["feature_cache"]["input_shape"] == [384]
    plain = hebbcore("run", spec, "--out", tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["final"] == a["final"]
    original = RunDir.save_checkpoint

    def stop_at_the_first_epochs_end(self, *args):
        original(self, *args)
        raise Stop

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_at_the_first_epochs_end)
    with pytest.raises(Stop):
        run(load_spec(spec, registry), registry, out_dir=tmp_path / "b", progress=False, features=FeatureCache())
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    res = hebbcore("run", "--resume", tmp_path / "b")
    assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "a" / "weights.npz") as w, np.load(tmp_path / "b" / "weights.npz") as r:
        for k in w.files:
            np.testing.assert_array_equal(r[k], w[k], err_msg=k)


def test_validate_prints_resolved_spec(tmp_path, npz_data):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(path=npz_data, init=""))
    res = hebbcore("validate", spec)
    assert res.returncode == 0 and 'aggregation = "weighted_mean"' in res.stdout


@pytest.mark.parametrize(
    "mutate, exit_code, needle",
    [
        (lambda s: s.replace('rule = "wta"', 'rule = "wtx"'), 2, "unknown rule 'wtx' (did you mean 'wta'?)"),
        (lambda s: s.replace("kernel_size = 5", "kernel_size = 50"), 2, "kernel_size 50 is larger than its input"),
        (lambda s: s.replace("out_features = 4", "out_features = 5"), 2, "teacher groups need 4 classes"),
        (lambda s: s.replace("grat.npz", "missing.npz"), 2, "missing.npz' does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, npz_data, mutate, exit_code, needle):
    spec = tmp_path / "s.toml"
    spec.write_text(mutate(SPEC.format(path=npz_data, init="")))
    res = hebbcore("run", spec, "--out", tmp_path / "o")
    assert res.returncode == exit_code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hebbcore: error: "), res.stderr
    assert needle in lines[0]


def test_corrupt_npz_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(path=bad, init=""))
    res = hebbcore("run", spec, "--out", tmp_path / "o")
    assert res.returncode == 2 and "bad.npz' is not a readable .npz" in res.stderr


def test_unavailable_backend_is_a_clean_error(tmp_path, npz_data):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(path=npz_data, init=""))
    res = hebbcore("run", spec, "--backend", "numpyy", "--out", tmp_path / "o")
    assert res.returncode == 2 and "unknown backend 'numpyy' (did you mean 'numpy'?)" in res.stderr
    res = hebbcore("run", spec, "--backend", "numpy", "--device", "cuda", "--out", tmp_path / "o")
    assert res.returncode == 1 and "runs on the CPU only" in res.stderr
    assert not (tmp_path / "o").exists()  # a run that failed before writing anything leaves no folder


def test_example_spec_runs(tmp_path):
    res = hebbcore("run", REPO / "examples" / "tiny.toml", "--out", tmp_path / "tiny", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "tiny" / "metrics.json").read_text())["final"]["test_acc"] > 0.5


def test_without_a_terminal_each_epoch_is_one_line(tmp_path):
    res = hebbcore("run", REPO / "examples" / "tiny.toml", "--out", tmp_path / "o")  # stderr is a pipe here
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["tiny: hebbian epoch 1/2", "tiny: hebbian epoch 2/2"]
    assert "img/s" in lines[0] and "val " in lines[0] and "phase ETA" in lines[0]
    quiet = hebbcore("run", REPO / "examples" / "tiny.toml", "--out", tmp_path / "q", "--no-progress")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_plot_without_matplotlib_is_one_line(tmp_path):
    assert hebbcore("run", REPO / "examples" / "tiny.toml", "--out", tmp_path / "o", "--no-progress").returncode == 0
    code = (
        "import sys; sys.modules['matplotlib'] = None; from hebbcore.cli import main; "
        f"sys.exit(main(['plot', {str(tmp_path / 'o')!r}]))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.strip() == (
        "hebbcore: error: hebbcore plot needs matplotlib: pip install 'hebbcore[plots]'"
    )


def test_version():
    res = hebbcore("--version")
    assert res.returncode == 0 and res.stdout.strip().startswith("hebbcore 0.")


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_export_gives_a_module_state_that_computes_the_run(tmp_path, fmt):
    torch = pytest.importorskip("torch")
    if fmt == "safetensors":
        pytest.importorskip("safetensors", reason="--format safetensors needs safetensors")
    out = tmp_path / "o"
    assert hebbcore("run", REPO / "examples" / "tiny.toml", "--out", out, "--no-progress").returncode == 0
    res = hebbcore("export", out, "--format", fmt)
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    if fmt == "torch":
        state = torch.load(path, weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(str(path))
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry
    from hebbcore.spec import load_spec
    from hebbcore.torch_model import load_run

    module = load_run(str(out))
    module.load_state_dict(state)  # a user's fresh model takes the exported state
    registry = default_registry()
    net = Network(load_spec(out / "spec.toml", registry), (3, 16, 16), 10, registry.get("backend", "numpy")(), registry)
    net.load_npz(str(out / "weights.npz"))
    x = np.random.default_rng(0).normal(size=(4, 3, 16, 16)).astype(np.float32)
    module.eval()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net.forward(x), rtol=1e-4, atol=1e-5)


MISSING_DATA = {
    "cifar10": ("HEBBCORE_CIFAR10", "CIFAR-10 not found"),
    "cifar100": ("HEBBCORE_CIFAR100", "CIFAR-100 not found"),
    "mnist": ("HEBBCORE_MNIST", "mnist not found"),
    "stl10": ("HEBBCORE_STL10", "STL-10 not found"),
}


@pytest.mark.parametrize("source", list(MISSING_DATA))
def test_validate_refuses_a_missing_data_set_as_run_does(tmp_path, source):
    env_var, needle = MISSING_DATA[source]
    spec = tmp_path / "s.toml"
    layers = '[[layers]]\nname = "flat"\ntype = "flatten"\n'
    layers += '[[layers]]\nname = "fc"\ntype = "linear"\nout_features = 10\n'
    spec.write_text(f'phases = ["sgd"]\n[data]\nsource = "{source}"\n[sgd]\nepochs = 1\n{layers}')
    env = {**os.environ, env_var: str(tmp_path / "nowhere")}
    outs = [
        subprocess.run([sys.executable, "-m", "hebbcore.cli", *args], capture_output=True, text=True, env=env)
        for args in (["validate", str(spec)], ["run", str(spec), "--out", str(tmp_path / "o")])
    ]
    for res in outs:
        err = res.stderr.strip()
        assert res.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert needle in err and "nowhere" in err, err
    assert outs[0].stderr == outs[1].stderr  # the same one line from both
    assert not (tmp_path / "o").exists()
    conv = '[[layers]]\nname = "conv"\ntype = "conv"\nout_channels = 2\nkernel_size = 99\ntrain = "sgd"\n'
    spec.write_text(spec.read_text().replace("[[layers]]", conv + "[[layers]]", 1))  # larger than any image
    err = subprocess.run([sys.executable, "-m", "hebbcore.cli", "validate", str(spec)], capture_output=True,
                         text=True, env=env).stderr  # fmt: skip
    assert "2 problems" in err and needle in err and "kernel_size 99 is larger than its input" in err, err


@pytest.mark.parametrize("args", [["plugins"], ["--help"], ["validate", "examples/tiny.toml"]])
@pytest.mark.parametrize("buffered", [True, False])
def test_a_reader_that_goes_away_ends_the_command_quietly(args, buffered):
    """``hebbcore plugins | head -1``: no error line when the pipe closes, and the exit status of SIGPIPE, whether
    the output is buffered (a pipe's default) or not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hebbcore.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )  # fmt: skip
    proc.stdout.close()  # before the command writes a line
    err = proc.stderr.read().decode()
    proc.stderr.close()
    quiet_exits = (0, 141) if args == ["--help"] else (141,)  # argparse itself ignores a failed write of its help
    assert proc.wait(timeout=60) in quiet_exits and err == ""


def test_channels_last_images_in_an_npz_are_refused_with_the_fix(tmp_path, npz_data):
    with np.load(npz_data) as f:
        x, y = f["x"], f["y"]
    bad = tmp_path / "hwc.npz"
    np.savez(bad, x=np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y=y)  # (N, H, W, C), as PIL gives them
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(path=bad, init=""))
    for args in (["validate", spec], ["run", spec, "--out", tmp_path / "o"]):
        res = hebbcore(*args)
        err = res.stderr.strip()
        assert res.returncode != 0 and len(err.splitlines()) == 1, err
        assert "looks like channels-last (N, H, W, C) images" in err and "x.transpose(0, 3, 1, 2)" in err, err
