"""Test accuracy of finished runs with a Hebbian classifier, predicted two ways from the same weights:
argmax of relu(cosine) (hebbcore before 2026-12-06: all-negative rows tie at 0 and go to class 0) and argmax of
the unclamped cosine (the paper's score). Needs each run's weights.npz (not committed: rerun the rows first).

    HEBBCORE_CIFAR10=... python experiments/paper/clamped_vs_unclamped.py experiments/paper/results t2_HHHHHH ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hebbcore.network import Network
from hebbcore.plugin_manager import default_registry
from hebbcore.runner import load_dataset
from hebbcore.spec import parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def main(results: Path, names: list[str]) -> None:
    registry = default_registry()
    ops = registry.get("backend", "numpy")()
    print("| run | all-negative test rows | relu(cosine) % | unclamped % |")
    print("| --- | ---: | ---: | ---: |")
    data = None
    for name in names:
        table = tomllib.loads((results / name / "spec.toml").read_text())
        table.pop("init_weights", None)  # the run's own weights.npz is loaded below
        spec = parse_spec(table, registry, name)
        data = data or load_dataset(spec, registry)
        net = Network(spec, data.input_shape, data.n_classes, ops, registry)
        net.load_npz(str(results / name / "weights.npz"))
        x, y = data.test.x, data.test.y
        clamped, unclamped, negative = [], [], 0
        for i in range(0, len(x), 500):
            s = net.scores(ops.asarray(x[i : i + 500]))
            clamped.append(np.maximum(s, 0).argmax(1))
            unclamped.append(s.argmax(1))
            negative += int((s < 0).all(1).sum())
        a, b = (float((np.concatenate(p) == y).mean()) for p in (clamped, unclamped))
        print(f"| {name} | {negative} | {100 * a:.2f} | {100 * b:.2f} |", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
