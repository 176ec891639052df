"""The run directory: checkpoint format (no pickle), lock, temporaries, refusals, rule state across a stop."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hebbcore.errors import DataError, HebbcoreError
from hebbcore.io import atomic_write_text
from hebbcore.rundir import (
    CHECKPOINT,
    LEGACY_CHECKPOINT,
    RunDir,
    RunDirBusy,
    RunDirTaken,
    decode_tree,
    dumps_checkpoint,
    encode_tree,
    loads_checkpoint,
)
from hebbcore.runner import run
from hebbcore.spec import loads_spec

# ------------------------------------------------------------------------------------------- the format

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
)
arrays = st.sampled_from([np.float32, np.float64, np.int64, np.uint8]).flatmap(
    lambda dt: st.lists(st.integers(0, 100), max_size=6).map(lambda v: np.asarray(v, dtype=dt))
)
trees = st.recursive(
    json_scalars | arrays,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6) | st.integers(-5, 5), inner, max_size=3)
    ),
    max_leaves=10,
)


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(tree=trees)
def test_checkpoint_round_trips_any_tree(tree):
    state = {"t": tree}
    assert same(loads_checkpoint(dumps_checkpoint(state), "x"), state)


def test_checkpoint_round_trips_torch_state_and_big_rng_ints():
    torch = pytest.importorskip("torch")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], betas=(0.8, 0.9))
    opt.zero_grad()
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    rng = np.random.default_rng(7)
    state = {"opt": opt.state_dict(), "gen": torch.Generator().get_state(), "rng": rng.bit_generator.state}
    back = loads_checkpoint(dumps_checkpoint(state), "x")
    assert back["rng"] == rng.bit_generator.state
    assert torch.equal(back["gen"], state["gen"])
    assert back["opt"]["param_groups"][0]["betas"] == (0.8, 0.9)
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    opt.load_state_dict(back["opt"])  # what the SGD phase does on resume


def test_encode_refuses_what_it_cannot_store():
    with pytest.raises(TypeError):
        encode_tree({"f": object()}, {})
    assert decode_tree(encode_tree({"__array__": 1}, {}), {}) == {"__array__": 1}  # user keys cannot fake a reference


class Payload:
    """Unpickling this runs ``touch MARKER``: what an attacker would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_legacy_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / LEGACY_CHECKPOINT).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DataError, match="pickle from an older hebbcore, which is never read"):
        RunDir(tmp_path).load_checkpoint()
    assert RunDir(tmp_path).interrupted_position() is None  # what the experiment manager asks
    assert not marker.exists()


def test_a_checkpoint_npz_holding_a_pickled_object_array_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, a0=np.array([Payload(marker)], dtype=object), __meta__=np.frombuffer(b"{}", np.uint8))
    (tmp_path / CHECKPOINT).write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="is unreadable"):
        RunDir(tmp_path).load_checkpoint()
    assert RunDir(tmp_path).interrupted_position() is None
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04junk", b"\x93NUMPY junk", os.urandom(300)])
def test_garbage_checkpoints_are_one_line(tmp_path, content):
    (tmp_path / CHECKPOINT).write_bytes(content)
    with pytest.raises(DataError) as err:
        RunDir(tmp_path).load_checkpoint()
    assert "\n" not in str(err.value) and CHECKPOINT in str(err.value)


# ------------------------------------------------------------------------------------------- the directory

LOCK_HOLDER = """
import sys, time
from hebbcore.rundir import RunDir
with RunDir(sys.argv[1]).locked():
    print("locked", flush=True)
    time.sleep(60)
"""


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        busy = f"in use by another hebbcore process \\(pid {p.pid}\\)"
        with pytest.raises(RunDirBusy, match=busy), RunDir(tmp_path).locked():
            pass
    finally:
        p.kill()
        p.wait()
    with RunDir(tmp_path).locked():  # the kernel released it with the process
        pass


def test_lock_is_reentrant_and_removes_temporaries(tmp_path):
    left = tmp_path / ".weights.npz.k2j3.tmp"
    left.write_bytes(b"half")
    rd = RunDir(tmp_path)
    with rd.locked():
        assert not left.exists()
        with rd.locked():
            pass
        with pytest.raises(RunDirBusy), RunDir(tmp_path).locked():  # another owner in this process is refused too
            pass


def test_a_run_that_writes_nothing_leaves_no_directory_it_made(tmp_path):
    made, kept = tmp_path / "runs" / "new", tmp_path / "existing"
    kept.mkdir()
    for path in (made, kept):
        with RunDir(path).locked():
            assert (path / ".lock").is_file()
    assert not (tmp_path / "runs").exists() and tmp_path.is_dir()  # the folders the run made go, no others
    assert [p.name for p in kept.iterdir()] == [".lock"]  # a folder that was there stays, as it was used
    wrote = tmp_path / "wrote"
    with RunDir(wrote).locked() as rd:
        rd.write_text("spec.toml", "x = 1\n")
    assert sorted(p.name for p in wrote.iterdir()) == [".lock", "spec.toml"]


def test_a_lock_file_its_holder_removed_is_not_taken_for_the_lock(tmp_path, monkeypatch):
    """The race of a run that fails and removes its folder while another opens the same .lock: the second must
    lock the file that is there now, not the removed one (which would let a third process in)."""
    import hebbcore.rundir as rundir

    path = tmp_path / "run"
    rd = RunDir(path)
    real_flock, calls = rundir.fcntl.flock, []

    def flock_after_the_holder_left(fd, op):
        if op & rundir.fcntl.LOCK_EX and not calls:  # between our open and our flock, the holder removes all
            calls.append(fd)
            (path / ".lock").unlink()
            path.rmdir()
        return real_flock(fd, op)

    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_the_holder_left)
    with rd.locked():
        assert os.fstat(rd._lock_fd).st_ino == (path / ".lock").stat().st_ino
    assert calls and not path.exists()


def test_a_directory_holding_a_run_is_refused_unless_overwrite(tmp_path):
    atomic_write_text(tmp_path / "metrics.json", "{}")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "learning_curves.png").write_bytes(b"png")
    (tmp_path / "plots" / "kernels_conv1.png").write_bytes(b"png")
    (tmp_path / "plots" / "mine.png").write_bytes(b"a user's own file")
    with pytest.raises(RunDirTaken, match="already holds a run \\(metrics.json\\).*--overwrite"):
        RunDir(tmp_path).prepare_fresh(overwrite=False)
    RunDir(tmp_path).prepare_fresh(overwrite=True)
    assert not (tmp_path / "metrics.json").exists()
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["mine.png"]  # only what a run draws goes


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode


# ------------------------------------------------------------------------------------------- rule state

RULES = {
    "hebb": ("weighted_mean", ""),
    "decay": ("weighted_mean", ""),
    "wta": ("weighted_mean", ""),
    "kwta": ("weighted_mean", "k = 2"),
    "oja": ("mean", ""),
    "sanger": ("mean", ""),
    "hpca": ("mean", ""),
    "softhebb": ("sum", ""),
    "krotov": ("sum", "k = 3"),
    "bcm": ("mean", "tau = 0.5"),
    "teacher": ("weighted_mean", 'groups_per_class = 2\ncompetition = "masked_wta"'),
    "chl": ("mean", "groups_per_class = 2"),
    "ridge": ("sum", "l2 = 0.01"),
}

RULE_SPEC = """
name = "r"
seed = 3
phases = ["hebbian"]
[data]
source = "synthetic"
[data.options]
n_train = 96
n_val = 0
n_test = 16
n_classes = 4
size = 8
[hebbian]
epochs = 2
batch_size = 16
[[layers]]
name = "conv1"
type = "conv"
out_channels = 8
kernel_size = 3
[layers.hebbian]
rule = "{rule}"
aggregation = "{agg}"
lr = 0.05
[layers.hebbian.options]
{opts}
"""


#: A classifier's rule (ridge: dense, one output per class) learns on fixed random conv features.
CLASSIFIER_RULES = {"ridge"}
CLASSIFIER_LAYERS = """
[[layers]]
name = "conv1"
type = "conv"
out_channels = 4
kernel_size = 3
train = "random"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "fc"
type = "linear"
out_features = 4
response = "linear"
[layers.hebbian]
rule = "{rule}"
aggregation = "{agg}"
lr = 1.0
[layers.hebbian.options]
{opts}
"""


def rule_spec(rule):
    agg, opts = RULES[rule]
    if rule in CLASSIFIER_RULES:
        return RULE_SPEC[: RULE_SPEC.index("[[layers]]")] + CLASSIFIER_LAYERS.format(rule=rule, agg=agg, opts=opts)
    return RULE_SPEC.format(rule=rule, agg=agg, opts=opts)


class Stop(BaseException):
    """A stop right after a checkpoint reached the disk, as a SIGKILL at that moment would leave it."""


def test_every_registered_rule_is_covered(registry):
    assert set(registry.names("rule")) <= set(RULES) | {"sign_hebb", "instar"}


@pytest.mark.parametrize("stop_after", [2, 3], ids=["mid-epoch", "epoch-end"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_stop_and_resume_gives_the_uninterrupted_weights_for_every_rule(
    tmp_path, registry, monkeypatch, rule, stop_after
):
    spec = loads_spec(rule_spec(rule), registry, against_data=True)
    ref = run(spec, registry, out_dir=tmp_path / "ref", progress=False)
    saves = {"n": 0}
    original = RunDir.save_checkpoint

    def stop_after_n(self, *args):
        original(self, *args)
        saves["n"] += 1
        if saves["n"] == stop_after:
            raise Stop

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_after_n)
    with pytest.raises(Stop):  # checkpoints at batches 2, 4 (mid-epoch) and 6 (epoch end)
        run(spec, registry, out_dir=tmp_path / "cut", progress=False, checkpoint_every=2)
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    resumed = run(spec, registry, out_dir=tmp_path / "cut", progress=False, checkpoint_every=2, resume=True)
    a, b = ref.network.state_dict(), resumed.network.state_dict()
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)
    for layer, state in ref.network.rule_state_dict().items():
        for k, v in state.items():
            np.testing.assert_array_equal(resumed.network.rule_state_dict()[layer][k], v, err_msg=f"{layer}.{k}")


def test_bcm_resume_needs_its_restored_threshold(tmp_path, registry, monkeypatch):
    """The test above is sensitive: a resume that forgets the rule state ends elsewhere."""
    from hebbcore.network import Network

    agg, opts = RULES["bcm"]
    spec = loads_spec(RULE_SPEC.format(rule="bcm", agg=agg, opts=opts), registry)
    ref = run(spec, registry, out_dir=tmp_path / "ref", progress=False)
    original = RunDir.save_checkpoint
    monkeypatch.setattr(RunDir, "save_checkpoint", lambda self, *a: (original(self, *a), (_ for _ in ()).throw(Stop)))
    with pytest.raises(Stop):
        run(spec, registry, out_dir=tmp_path / "cut", progress=False, checkpoint_every=2)
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    monkeypatch.setattr(Network, "load_rule_state", lambda self, states, source="": None)
    forgot = run(spec, registry, out_dir=tmp_path / "cut", progress=False, checkpoint_every=2, resume=True)
    assert np.abs(forgot.network.state_dict()["conv1.weight"] - ref.network.state_dict()["conv1.weight"]).max() > 1e-6


def test_a_checkpoint_missing_a_parameter_or_rule_state_is_refused(tmp_path, registry):
    agg, opts = RULES["bcm"]
    spec = loads_spec(RULE_SPEC.format(rule="bcm", agg=agg, opts=opts), registry)
    run(spec, registry, out_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT
    state = loads_checkpoint(path, "x")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    metrics["final"] = None
    state["metrics"] = metrics
    state["phase_index"] = 0
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))  # as a run cut short leaves it
    for broken, needle in (
        (lambda s: s["net"].pop("conv1.weight"), "no array for parameter\\(s\\) conv1.weight"),
        (lambda s: s["rule_state"]["conv1"].pop("theta"), "has state \\['fresh', 'theta'\\]"),
    ):
        s = loads_checkpoint(dumps_checkpoint(state), "x")
        broken(s)
        path.write_bytes(dumps_checkpoint(s))
        with pytest.raises(HebbcoreError, match=needle):
            run(spec, registry, out_dir=tmp_path, progress=False, resume=True)


def test_resume_on_another_backend_records_both_segments(tmp_path, registry, monkeypatch):
    pytest.importorskip("torch")
    spec = loads_spec(RULE_SPEC.format(rule="wta", agg="weighted_mean", opts=""), registry)
    original = RunDir.save_checkpoint
    monkeypatch.setattr(RunDir, "save_checkpoint", lambda self, *a: (original(self, *a), (_ for _ in ()).throw(Stop)))
    with pytest.raises(Stop):
        run(spec, registry, out_dir=tmp_path, progress=False, checkpoint_every=2)
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    result = run(spec, registry, backend="torch", device="cpu", out_dir=tmp_path, progress=False, resume=True)
    segments = result.metrics["segments"]
    assert [s["backend"] for s in segments] == ["numpy", "torch"] and result.metrics["backend"] == "torch"
    assert segments[1]["resumed_at"] == {"phase_index": 0, "epoch": 1, "batch": 2}
    assert json.loads((tmp_path / "metrics.json").read_text())["segments"] == segments


def test_resume_waits_for_nothing_when_the_run_is_locked(tmp_path, registry):
    spec = loads_spec(RULE_SPEC.format(rule="wta", agg="weighted_mean", opts=""), registry)
    p = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        t0 = time.time()
        for resume in (False, True):
            with pytest.raises(RunDirBusy):
                run(spec, registry, out_dir=tmp_path, progress=False, resume=resume)
        assert time.time() - t0 < 5
    finally:
        p.kill()
        p.wait()
