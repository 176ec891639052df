"""The memory estimate made at spec load: its figures against a count made by hand from the layer shapes."""

from __future__ import annotations

from hebbcore.network import build_layers
from hebbcore.resources import EVAL_BATCH, memory_problem, run_memory
from hebbcore.spec import parse_spec


def test_run_memory_counts_parameters_data_and_the_widest_responses(registry):
    spec = parse_spec({"layers": [
        {"name": "c", "type": "conv", "out_channels": 6, "kernel_size": 3, "train": "sgd"},   # 3x10x10 -> 6x8x8
        {"name": "p", "type": "pool", "kernel_size": 2},                                       # -> 6x4x4
        {"name": "f", "type": "flatten"},                                                      # -> 96
        {"name": "l", "type": "linear", "out_features": 4, "hebbian": {"rule": "teacher"}},   # -> 4, no bias
    ]}, registry)  # fmt: skip
    layers = build_layers(spec.layers, (3, 10, 10))
    need = run_memory(layers, n_samples=50, input_shape=(3, 10, 10), hebbian_batch=16, sgd_batch=32)
    assert need["parameters"] == 8 * ((6 * 27 + 6) + 4 * 96)
    assert need["data"] == 4 * 50 * 300
    widest = 300 + 384  # the conv's input and output
    every = 384 + 96 + 96 + 4
    assert need["activations"] == 4 * max(EVAL_BATCH * widest, 3 * 16 * widest, 3 * 32 * every)


def test_memory_problem_is_one_line_naming_each_part():
    line = memory_problem({"parameters": 3 << 30, "data": 9 << 30}, available=4 << 30)
    assert line == "the run needs about 12 GiB (parameters 3 GiB, data 9 GiB), 4 GiB available"
    assert memory_problem({"data": 1 << 20}, available=4 << 30) is None
