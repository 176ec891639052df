"""Fault injection through the command line: every failure is one line and a non-zero exit, nothing that
was written is lost or left half-written, and nothing read from disk runs code."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import rank_envs

SPEC = """
name = "{name}"
seed = {seed}
phases = ["hebbian"]
[data]
source = "synthetic"
[data.options]
n_train = {n_train}
n_val = 32
n_test = 32
size = 12
[hebbian]
epochs = {epochs}
batch_size = 16
[[layers]]
name = "conv1"
type = "conv"
out_channels = {k}
kernel_size = 3
[layers.hebbian]
rule = "wta"
lr = {lr}
[[layers]]
name = "pool1"
type = "pool"
kernel_size = 2
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "clf"
type = "linear"
out_features = {clf}
[layers.hebbian]
rule = "teacher"
{extra}
"""
DEFAULTS = dict(name="f", seed=0, n_train=128, epochs=1, k=8, lr=0.1, clf=10, extra="")


def spec_text(**changes) -> str:
    return SPEC.format(**{**DEFAULTS, **changes})


def cli(*args, preexec_fn=None, timeout=180, **kw):
    return subprocess.run(
        [sys.executable, "-m", "hebbcore.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        **kw,
    )


def one_line(res, code: int, needle: str) -> str:
    err = res.stderr.strip()
    assert res.returncode == code, (res.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err, err
    return err


def write_spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------- hostile specs

HOSTILE = {
    "huge layer": (dict(k=10**9), "the run needs about"),
    "huge data": (dict(n_train=10**11), "the run needs about"),
    "negative seed": (dict(seed=-5), "seed: expected 0 <= seed < 2**63, got -5"),
    "negative n_train": (dict(n_train=-10), "data.options.n_train: expected >= 1, got -10"),
    "no training data": (dict(n_train=0), "data.options.n_train: expected >= 1, got 0"),
    "name escapes runs/": (dict(name="../../../tmp/x"), "name: expected a single folder name"),
    "name too long": (dict(name="a" * 5000), "name: expected at most 100 characters, got 5000"),
    "zero lr": (dict(lr=0), "hebbian.lr: expected > 0, got 0.0"),
    "too few teacher kernels": (dict(clf=3), "teacher groups need 10 classes x 1 + 0 common = 10 kernels"),
    "deep array": (dict(extra="junk = " + "[" * 5000 + "]" * 5000), "nested too deeply"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_specs_are_refused_the_same_by_validate_and_run(tmp_path, case, command):
    changes, needle = HOSTILE[case]
    spec = write_spec(tmp_path, spec_text(**changes))
    args = ("--out", tmp_path / "o") if command == "run" else ()
    err = one_line(cli(command, spec, *args, cwd=tmp_path), 2, needle)
    assert str(spec) in err  # every problem names the spec file
    assert not (tmp_path / "o").exists() and not (tmp_path / "runs").exists() and not Path("/tmp/x").exists()


@pytest.mark.parametrize("rule, lr, check", [("wta", 1e30, 1), ("hebb", 1e38, 50)])  # hebb: overflow in products
def test_overflowing_weights_stop_the_run(tmp_path, rule, lr, check):
    text = spec_text(lr=lr, epochs=2).replace("batch_size = 16", f"batch_size = 16\ncheck_every = {check}")
    spec = write_spec(tmp_path, text.replace('rule = "wta"', f'rule = "{rule}"'))
    err = one_line(cli("run", spec, "--out", tmp_path / "o", "--no-progress"), 1, "layer 'conv1'")
    assert "overflowed" in err or "NaN or inf" in err
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["final"] is None


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_corrupt_or_pickled_init_weights_are_one_line(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "w.npz"
    spec = write_spec(
        tmp_path, spec_text().replace('phases = ["hebbian"]', f'phases = ["hebbian"]\ninit_weights = "{bad}"')
    )
    for i, content in enumerate((b"PK\x03\x04 not a zip", b"")):
        bad.write_bytes(content)
        one_line(cli("run", spec, "--out", tmp_path / f"o{i}"), 1, "w.npz' is not a readable .npz")
    np.savez(bad, **{"conv1.weight": np.array([Payload(marker)], dtype=object)})
    one_line(cli("run", spec, "--out", tmp_path / "o2"), 1, "w.npz' is not a readable .npz")
    assert not marker.exists()


def test_init_weights_naming_no_layer_is_one_line_with_a_suggestion(tmp_path):
    """Weights saved under other layer names would silently leave the network at its random start."""
    w = tmp_path / "w.npz"
    np.savez(w, **{"c1.weight": np.zeros((8, 3, 3, 3), np.float32)})
    spec = write_spec(
        tmp_path, spec_text().replace('phases = ["hebbian"]', f'phases = ["hebbian"]\ninit_weights = "{w}"')
    )
    err = one_line(cli("run", spec, "--out", tmp_path / "o"), 1, "none of its arrays (c1.weight) names a parameter")
    assert "did you mean 'conv1.weight' for 'c1.weight'?" in err
    assert not (tmp_path / "o").exists()  # the run failed before writing anything: no folder left behind


def test_plot_of_a_damaged_run_directory_is_one_line(tmp_path):
    pytest.importorskip("matplotlib")
    spec = write_spec(tmp_path, spec_text())
    out = tmp_path / "o"
    assert cli("run", spec, "--out", out, "--no-progress").returncode == 0
    raw = bytearray((out / "weights.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside a stored array: the archive opens, its CRC check fails
    (out / "weights.npz").write_bytes(bytes(raw))
    one_line(cli("plot", out), 1, "the run's weights: ")
    (out / "metrics.json").write_text('{"epochs": [')
    one_line(cli("plot", out), 1, "metrics.json' is not readable JSON")


def test_a_crafted_checkpoint_pickle_does_not_run_on_resume(tmp_path):
    out = tmp_path / "o"
    spec = write_spec(tmp_path, spec_text())
    assert cli("run", spec, "--out", out, "--no-progress").returncode == 0
    (out / "checkpoint.npz").unlink()
    marker = tmp_path / "pwned"
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(Payload(marker)))
    one_line(cli("run", "--resume", out), 1, "is a pickle from an older hebbcore, which is never read")
    assert not marker.exists()


def test_a_crafted_cifar_batch_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload(marker)}, protocol=2))
    spec = write_spec(
        tmp_path,
        spec_text()
        .replace('source = "synthetic"', 'source = "cifar10"')
        .replace(
            "n_train = 128\nn_val = 32\nn_test = 32\nsize = 12",
            f'root = "{folder}"\nn_train = 100\nn_val = -1\nn_test = -1',
        ),
    )
    one_line(cli("run", spec, "--out", tmp_path / "o"), 1, "refused global posix.system")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- the run directory


def test_a_second_run_into_the_same_directory_is_refused_and_overwrite_replaces_it(tmp_path):
    spec = write_spec(tmp_path, spec_text())
    out = tmp_path / "o"
    assert cli("run", spec, "--out", out, "--no-progress").returncode == 0
    before = (out / "weights.npz").read_bytes()
    one_line(cli("run", spec, "--out", out), 2, "already holds a run (checkpoint.npz)")
    assert (out / "weights.npz").read_bytes() == before
    res = cli("run", spec, "--out", out, "--no-progress", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert len(json.loads((out / "metrics.json").read_text())["segments"]) == 1


def _sigint_default():
    # a shell's background job ignores SIGINT, and Python then keeps it ignored: the child must hear Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_two_concurrent_runs_the_second_fails_at_once_naming_the_first(tmp_path):
    spec = write_spec(tmp_path, spec_text(n_train=20000, epochs=1000))  # minutes: still running when the others try
    out = tmp_path / "o"
    first = subprocess.Popen(
        [sys.executable, "-m", "hebbcore.cli", "run", str(spec), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    try:
        deadline = time.time() + 60
        while not (out / "metrics.json").exists():  # it holds the lock and has started writing
            assert time.time() < deadline and first.poll() is None, "the first run never started"
            time.sleep(0.05)
        t0 = time.time()
        for args in (("run", spec, "--out", out, "--overwrite"), ("run", "--resume", out)):
            one_line(cli(*args), 1, f"is in use by another hebbcore process (pid {first.pid})")
        assert time.time() - t0 < 20 and first.poll() is None
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err  # interrupted cleanly, files complete
    finally:
        first.kill()
    m = json.loads((out / "metrics.json").read_text())
    assert m["final"] is None and len(m["segments"]) == 1  # the refused runs wrote nothing into it


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


def test_a_file_size_limit_is_one_line_and_keeps_what_was_written(tmp_path):
    spec = write_spec(tmp_path, spec_text(k=64))  # weights of about 60 kB
    out = tmp_path / "o"
    one_line(
        cli("run", spec, "--out", out, "--no-progress", preexec_fn=_limit_file_size),
        1,
        "File too large (EFBIG); the files already written are intact",
    )
    json.loads((out / "metrics.json").read_text())
    assert not list(out.glob(".*.tmp"))


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tmp_path):
    spec = write_spec(tmp_path, spec_text(k=64, epochs=2))
    with mounted_tmpfs(tmp_path / "small", "size=128k") as small:
        (small / "filler").write_bytes(b"\0" * 40_000)
        out = small / "o"
        one_line(cli("run", spec, "--out", out, "--no-progress"), 1, "No space left on device (ENOSPC)")
        m = json.loads((out / "metrics.json").read_text())
        assert m["final"] is None
        assert not list(out.glob(".*.tmp"))


def test_a_read_only_out_directory_is_one_line(tmp_path):
    spec = write_spec(tmp_path, spec_text())
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        one_line(cli("run", spec, "--out", ro / "o", "--no-progress"), 1, "Read-only file system (EROFS)")


def test_resume_removes_temporaries_a_kill_left(tmp_path):
    spec = write_spec(tmp_path, spec_text(epochs=2))
    out = tmp_path / "o"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hebbcore.cli",
            "run",
            str(spec),
            "--out",
            str(out),
            "--checkpoint-every",
            "1",
            "--no-progress",
        ],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while not (out / "checkpoint.npz").exists():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    (out / ".checkpoint.npz.x1y2.tmp").write_bytes(b"half")
    res = cli("run", "--resume", out, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------- distributed


def test_a_stalled_worker_ends_the_others_naming_its_rank(tmp_path):
    pytest.importorskip("torch", reason="torch.distributed")
    spec = write_spec(tmp_path, spec_text(n_train=4000, epochs=50))
    procs = []
    for env in rank_envs(2):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hebbcore.cli",
                    "run",
                    str(spec),
                    "--out",
                    str(tmp_path / "dp"),
                    "--distributed",
                    "--dist-timeout",
                    "4",
                    "--no-progress",
                    "--checkpoint-every",
                    "5",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.time() + 90
        while not (tmp_path / "dp" / "checkpoint.npz").exists():
            assert time.time() < deadline and all(p.poll() is None for p in procs), procs[0].stderr.read()
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGSTOP)
        t0 = time.time()
        _, err = procs[0].communicate(timeout=90)
        res = subprocess.CompletedProcess(procs[0].args, procs[0].returncode, "", err)
        one_line(res, 1, "rank 0: rank 1 stopped answering for 4 s")
        assert time.time() - t0 < 60
    finally:
        for p in procs:
            p.kill()
            p.wait()


def raw_checkpoint(meta: str) -> bytes:
    """An .npz whose JSON document is ``meta``, as a hand-made or damaged checkpoint would hold."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta.encode(), np.uint8))
    return buf.getvalue()


def test_garbled_checkpoints_and_a_finished_run_are_one_line_on_resume(tmp_path):
    import numpy as np

    spec = write_spec(tmp_path, spec_text())
    out = tmp_path / "o"
    assert cli("run", spec, "--out", out, "--no-progress").returncode == 0
    one_line(cli("run", "--resume", out), 1, "the run is finished; train it again with --overwrite")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["final"] = None
    (out / "metrics.json").write_text(json.dumps(metrics))
    np.save(out / "x.npy", np.zeros(3))
    garbled = [
        (out / "x.npy").read_bytes(),  # an .npy array named checkpoint.npz
        raw_checkpoint('{"format": "hebbcore-checkpoint/1", "state": {"spec": {"__tuple__": 5}}}'),
        raw_checkpoint('{"format": "hebbcore-checkpoint/1", "state": {"__dict__": [1]}}'),
        raw_checkpoint('{"format": "hebbcore-checkpoint/1", "state": {"spec": {"__array__": [1]}}}'),
    ]
    for content in garbled:
        (out / "checkpoint.npz").write_bytes(content)
        one_line(cli("run", "--resume", out), 1, "checkpoint.npz' is unreadable")
