"""Reliability: resume after SIGKILL, NaN stops, data-parallel equivalence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import rank_envs

from hebbcore.errors import HebbcoreError
from hebbcore.rundir import RunDir

pytest.importorskip("torch", reason="the SGD phase and torch.distributed need torch")

SPEC = """
name = "rel"
seed = 5
[data]
source = "synthetic"
[data.options]
n_train = 800
n_val = 200
n_test = 200
size = 12
[hebbian]
epochs = 2
batch_size = 16
[sgd]
epochs = 2
batch_size = 32
lr = 0.02
[[layers]]
name = "conv1"
type = "conv"
out_channels = 16
kernel_size = 3
[layers.hebbian]
rule = "wta"
[[layers]]
name = "pool1"
type = "pool"
kernel_size = 2
[[layers]]
name = "bn1"
type = "batchnorm"
[[layers]]
name = "conv2"
type = "conv"
out_channels = 12
kernel_size = 3
[layers.hebbian]
rule = "teacher"
[layers.hebbian.options]
groups_per_class = 1
common = 2
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "drop"
type = "dropout"
p = 0.3
[[layers]]
name = "fc"
type = "linear"
out_features = 10
train = "sgd"
"""


def cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "hebbcore.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return out


def weights(d):
    with np.load(d / "weights.npz") as f:
        return {k: f[k] for k in f.files}


def checkpoint_position(d):
    try:
        st = RunDir(d).load_checkpoint()
    except HebbcoreError:
        return None
    return st["phase_index"], st["epoch"], st["batch"]


#: conv1 learns with BCM, whose threshold is rule state the checkpoint must carry.
BCM_SPEC = SPEC.replace('rule = "wta"', 'rule = "bcm"\naggregation = "mean"\nlr = 0.01', 1)


@pytest.fixture(scope="module", params=["wta", "bcm"])
def reference(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    (d / "s.toml").write_text(SPEC if request.param == "wta" else BCM_SPEC)
    finish(cli("run", d / "s.toml", "--out", d / "run", "--no-progress"))
    return d / "s.toml", weights(d / "run"), json.loads((d / "run" / "metrics.json").read_text())


@pytest.mark.parametrize("kill_at", [(0, 1, 20), (0, 2, 8), (1, 1, 10)], ids=["hebbian-e1", "hebbian-e2", "sgd-e1"])
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path, reference, kill_at):
    spec, ref_weights, ref_metrics = reference
    out = tmp_path / "run"
    p = cli("run", spec, "--out", out, "--checkpoint-every", "4", "--no-progress")
    deadline = time.time() + 240
    while time.time() < deadline:
        pos = checkpoint_position(out)
        if pos is not None and pos >= kill_at:
            break
        if p.poll() is not None:
            pytest.fail(f"the run ended before it could be killed at {kill_at}: {p.stderr.read()}")
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert checkpoint_position(out) < (len(("hebbian", "sgd")), 1, 0), "killed too late to test anything"
    json.loads((out / "metrics.json").read_text())  # never half-written
    finish(cli("run", "--resume", out, "--no-progress"))
    got = weights(out)
    assert got.keys() == ref_weights.keys()
    for k in got:
        np.testing.assert_allclose(got[k], ref_weights[k], rtol=1e-5, atol=1e-6, err_msg=k)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(e["phase"], e["epoch"]) for e in metrics["epochs"]] == [
        (e["phase"], e["epoch"]) for e in ref_metrics["epochs"]
    ]
    assert metrics["final"] == ref_metrics["final"] and metrics["resumed"]


def test_resume_without_checkpoint_is_a_clean_error(tmp_path):
    p = cli("run", "--resume", tmp_path / "nothing")
    p.wait()
    err = p.stderr.read()
    assert p.returncode != 0 and "Traceback" not in err and "spec.toml" in err


def test_nan_stops_with_layer_and_step_and_keeps_last_checkpoint(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        SPEC.replace('rule = "teacher"', 'rule = "teacher"\naggregation = "sum"\nlr = 1e30').replace(
            "epochs = 2\nbatch_size = 16", "epochs = 2\nbatch_size = 16\ncheck_every = 1"
        )
    )
    out = tmp_path / "run"
    p = cli("run", spec, "--out", out, "--no-progress")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "layer 'conv2'" in line and ("NaN or inf" in line or "overflowed" in line) and "batch" in line, line
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"] is None


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_two_processes_equal_one_process(tmp_path, backend):
    spec = tmp_path / "s.toml"
    spec.write_text(
        SPEC.replace("epochs = 2\nbatch_size = 32", "epochs = 0\nbatch_size = 32").replace(
            "n_train = 800", "n_train = 480"
        )
    )
    single = tmp_path / "single"
    finish(cli("run", spec, "--out", single, "--backend", backend, "--device", "cpu", "--no-progress"))
    procs = []
    for env in rank_envs(2):
        procs.append(
            cli(
                "run",
                spec,
                "--out",
                tmp_path / "dp",
                "--backend",
                backend,
                "--device",
                "cpu",
                "--distributed",
                "--no-progress",
                env=env,
            )
        )
    for p in procs:
        finish(p)
    a, b = weights(single), weights(tmp_path / "dp")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert json.loads((tmp_path / "dp" / "metrics.json").read_text())["world_size"] == 2
