"""hebbcore.allocator: glibc's thresholds fixed so that a step's freed buffers are reused, not faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hebbcore import allocator

needs_glibc = pytest.mark.skipif(allocator._glibc() is None, reason="malloc tuning needs glibc (Linux)")

# Allocates, touches and frees a 48 MiB array (above glibc's largest adaptive mmap threshold, 32 MiB) 20 times
# and prints the minor page faults per round. Untuned, every round maps fresh memory and faults it in again: up to
# 12,288 faults of 4 KiB pages, fewer where numpy's huge-page advice is taken
# (536 per round on the VM this test was written on).
_FAULTS = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from hebbcore.allocator import tune_malloc
    result = tune_malloc() if sys.argv[1] == "tuned" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(12 << 20, dtype=np.float32)  # the first round may fault in any case
    before = faults()
    for _ in range(20):
        a = np.ones(12 << 20, dtype=np.float32)
        del a
    print(json.dumps({"faults_per_round": (faults() - before) / 20, "result": result}))
""")


def _faults(mode: str, env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout)


@needs_glibc
def test_tuning_stops_the_page_faults_of_a_freed_and_reallocated_buffer():
    untuned, tuned = _faults("untuned"), _faults("tuned")
    assert tuned["result"]["applied"] is True
    if untuned["faults_per_round"] < 24:  # below one fault per 2 MiB huge page: nothing to show here
        pytest.skip(f"untuned rounds fault only {untuned['faults_per_round']:.0f} times here")
    assert tuned["faults_per_round"] < untuned["faults_per_round"] / 20


@needs_glibc
def test_environment_variable_turns_it_off():
    off = _faults("tuned", {allocator.ENV_VAR: "0"})
    assert off["result"] == {"applied": False, "reason": f"{allocator.ENV_VAR}=0"}


@needs_glibc
def test_result_is_recorded_for_the_bench(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    assert allocator.malloc_tuning()["applied"] is False
    monkeypatch.setenv(allocator.ENV_VAR, "off")
    assert allocator.tune_malloc()["applied"] is False
    monkeypatch.delenv(allocator.ENV_VAR)
    done = allocator.tune_malloc()
    assert done == {
        "applied": True,
        "reason": "glibc",
        "mmap_threshold_bytes": allocator.MMAP_THRESHOLD_BYTES,
        "trim_threshold_bytes": allocator.TRIM_THRESHOLD_BYTES,
    }
    monkeypatch.setenv(allocator.ENV_VAR, "0")
    allocator.tune_malloc()  # a later call that does nothing does not hide what was applied
    assert allocator.malloc_tuning() == done


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="2 GiB"):
        allocator.tune_malloc(mmap_threshold=1 << 31)
