"""The stand-alone benchmark scripts still run (tiny settings) and print what their docs say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# lab scripts timing real work: CI runs them in a bounded step of their own (pytest -m slow)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def script(*args: str, timeout: int = 300) -> str:
    """What ``python ARGS...`` prints, run from the repository root; it must exit 0."""
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_winner_sums_script_prints_a_row_per_layer_and_skips_missing_backends():
    stdout = script("benchmarks/winner_sums.py", "--backend", "numpy,nosuchbackend", "--repeats", "1", "--steps", "1")
    assert re.search(r"nosuchbackend:\S* skipped", stdout)
    rows = re.findall(r"^\| \((\d+), (\d+), (\d+), (\d)\) \| ([\d.]+) \| ([\d.]+) \|$", stdout, re.M)
    assert [r[:4] for r in rows] == [
        ("3", "32", "96", "5"),
        ("96", "14", "128", "3"),
        ("128", "12", "192", "3"),
        ("192", "5", "256", "3"),
    ]
    assert re.search(r"^\| numpy:cpu \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", stdout, re.M)  # the steps' row


def test_step_profile_script_prints_both_steps(tmp_path):
    pytest.importorskip("torch")
    stdout = script("benchmarks/step_profile.py", "--steps", "2", "--top", "3")
    for name in ("Hebbian step", "floor"):
        assert re.search(rf"^\| {name} \| [\d.]+ \| \d+ \| - \| - \|$", stdout, re.M), stdout
        assert f"{name}, operators by self_cpu_time_total" in stdout


def test_step_profile_by_method_on_numpy():
    stdout = script("benchmarks/step_profile.py", "--backend", "numpy", "--by-method", "--steps", "2", "--top", "40")
    rows = dict(re.findall(r"^\| (\w+) \| (\d+ \| [\d.]+ \| \d+ \| [\d.]+) \|$", stdout, re.M))
    # the Hebbian step computes winner sums, the floor a full weight-correlation: 4 conv layers each
    assert rows["conv2d_winner_sums"].startswith("4 |") and rows["conv2d_winner_sums"].split(" | ")[2] == "0"
    assert rows["conv2d_weight_sums"].startswith("0 |") and rows["conv2d_weight_sums"].split(" | ")[2] == "4"
    assert rows["conv2d"].split(" | ")[0] == rows["conv2d"].split(" | ")[2] == "4"
    assert re.search(r"^\| whole step, wall \| - \| [\d.]+ \| - \| [\d.]+ \|$", stdout, re.M)


def test_step_profile_by_layer_charges_each_layer_its_forward_and_update():
    stdout = script("benchmarks/step_profile.py", "--backend", "numpy", "--by-layer", "--steps", "2")
    row = r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (.*) \|$"
    rows = {m[0]: m[1:] for m in re.findall(row, stdout, re.M)}
    for layer in ("conv1", "conv2", "conv3", "conv4", "fc5"):  # Hebbian layers: forward, similarity, update
        assert all(float(rows[layer][i]) > 0 for i in range(3)), stdout
    # the top layer's teacher reads neither w·x nor the cosine, and nothing reads its response during the step
    assert rows["fc6"][:2] == ("0.00", "0.00") and float(rows["fc6"][2]) > 0, stdout
    assert rows["pool1"][1:3] == ("0.00", "0.00") and rows["bn1"][1:3] == ("0.00", "0.00")  # nothing learns there
    assert "conv2d_winner_sums" in rows["conv1"][3] and "cosine" not in rows["conv1"][3]  # the cosine: similarity
    for i in range(3):  # the total is the rows' sum
        total = sum(float(r[i]) for name, r in rows.items() if name != "all")
        assert float(rows["all"][i]) == pytest.approx(total, abs=0.02 * len(rows))


def test_step_faults_and_blas_spin_scripts_print_their_tables():
    stdout = script("benchmarks/step_faults.py", "--backend", "numpy", "--steps", "2")
    assert stdout.startswith("malloc tuning: {'applied'")
    for step in ("Hebbian", "floor"):
        assert re.search(rf"^\| numpy \| {step} \| [\d.]+ \| \d+ \| [\d.]+ \|$", stdout, re.M), stdout
    stdout = script("benchmarks/blas_spin.py")
    for name in ("one thread", "two threads, halves"):
        assert re.search(rf"^\| {name} \| [\d.]+ \| [\d.]+ \|$", stdout, re.M), stdout


def test_conv_gemm_script_names_the_blas_kernels_and_times_each_layer():
    stdout = script("benchmarks/conv_gemm.py", "--repeats", "1")
    assert stdout.startswith("numpy BLAS: ")
    rows = re.findall(
        r"^\| \((\d+), (\d+), (\d+), (\d)\) \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| (?:[\d.]+|nan) \|$",
        stdout,
        re.M,
    )
    assert rows == [
        ("3", "32", "96", "5"),
        ("96", "14", "128", "3"),
        ("128", "12", "192", "3"),
        ("192", "5", "256", "3"),
    ]
    assert re.search(r"^\| all four \| [\d.]+ \| [\d.]+ \| \| [\d.]+ \| (?:[\d.]+|nan) \|$", stdout, re.M)


def test_conv_gemm_script_times_softhebbs_layers_with_their_weight_sums():
    stdout = script("benchmarks/conv_gemm.py", "--repeats", "1", "--net", "softhebb")
    num = r"(?:[\d.]+|nan)"
    rows = re.findall(rf"^\| \((\d+), (\d+), (\d+), (\d)\) \| [\d.]+ \| [\d.]+ \| {num} \| {num} \|$", stdout, re.M)
    assert rows == [("3", "36", "96", "5"), ("96", "18", "384", "3"), ("384", "10", "1536", "3")]
    assert re.search(rf"^\| all three \| [\d.]+ \| [\d.]+ \| {num} \| {num} \|$", stdout, re.M)


def _git_head():
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


@pytest.mark.skipif(_git_head() is None, reason="needs a git checkout of hebbcore")
def test_at_revision_imports_the_library_from_a_worktree_it_removes_afterwards(tmp_path):
    probe = (
        "import hebbcore.ops, hebbcore_backends, hebbcore_plugins; print(hebbcore.ops.__file__); "
        "print(hebbcore_backends.__file__); print(hebbcore_plugins.__file__)"
    )
    stdout = script("benchmarks/at_revision.py", "HEAD", "python", "-c", probe, timeout=120)
    files = stdout.split()
    assert len(files) == 3 and all("hebbcore-at-" in f and not f.startswith(str(ROOT)) for f in files), files
    trees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "hebbcore-at-" not in trees
    (tmp_path / "probe.py").write_text(probe)  # a relative path that exists here is passed on as an absolute one
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/at_revision.py"), "HEAD", "python", "probe.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert all("hebbcore-at-" in f for f in out.stdout.split()) and len(out.stdout.split()) == 3
    bad = subprocess.run(
        [sys.executable, "benchmarks/at_revision.py", "no-such-revision", "python", "-c", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "cannot check out 'no-such-revision'" in bad.stderr


@pytest.mark.skipif(_git_head() is None, reason="needs a git checkout of hebbcore")
def test_ops_at_revision_alternates_both_versions_in_one_process():
    stdout = script(
        "benchmarks/ops_at_revision.py", "HEAD", "cosine,conv2d_winner_sums", "--alternate", "1", "--rounds", "1"
    )
    assert re.search(r"^\| numpy \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", stdout, re.M), stdout


def test_gram_script_times_both_ways():
    pytest.importorskip("torch")
    stdout = script("benchmarks/gram.py", "--quick", "--repeats", "1")
    assert re.search(r"^\| \(64, 96, 28, 28\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", stdout, re.M), stdout


def test_step_profile_by_layer_of_a_spec():
    stdout = script(
        "benchmarks/step_profile.py", "--backend", "numpy", "--by-layer", "--steps", "2",
        "--spec", "experiments/presets/krotov_mnist.toml",
    )  # fmt: skip
    assert "2 batch-100 steps of krotov_mnist each" in stdout, stdout
    assert re.search(r"^\| hidden \| [\d.]+ \| [\d.]+ \| [\d.]+ \| linear ", stdout, re.M), stdout
