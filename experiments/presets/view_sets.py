"""Which test-time views to average: a finished probe run's accuracy on one split (validation, to choose) under
several sets of views of each image, from one scoring of each view. Needs the run's weights.npz (not committed:
rerun the row first).

    HEBBCORE_CIFAR10=... python experiments/presets/view_sets.py RESULTS/softhebb_cifar10_probe_flip_40k_tuned

A view is ``(mirrored, dy, dx)`` (:func:`hebbcore.network.view_of`: shifted content, the border reflected);
``hebbcore evaluate --hflip --shift 1`` is the set "mirror x (itself, 1 px both axes)".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hebbcore.evaluate import load_finished_run
from hebbcore.plugin_manager import default_registry

H1 = [(0, 0), (0, 1), (0, -1)]
HV1 = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
H12 = [(0, 0), (0, 1), (0, -1), (0, 2), (0, -2)]
#: name -> offsets (dy, dx), each seen as is and mirrored (but "plain")
SETS = {
    "plain": [(0, 0)],
    "mirror": [(0, 0)],
    "mirror x (itself, 1 px horizontally)": H1,
    "mirror x (itself, 1 px both axes)": HV1,
    "mirror x (itself, 1 and 2 px horizontally)": H12,
    "mirror x all of the above": sorted(set(HV1 + H12)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--backend", default="torch")
    args = ap.parse_args()
    data, net = load_finished_run(args.run_dir, default_registry(), args.backend)
    split = getattr(data, args.split)
    views = [(m, dy, dx) for m in (False, True) for dy, dx in SETS["mirror x all of the above"]]
    scores = dict(zip(views, net.view_scores(split.x, views), strict=True))
    print(f"| views of each {args.split} image ({args.run_dir.name}) | views | accuracy % |")
    print("| --- | ---: | ---: |")
    for name, offsets in SETS.items():
        chosen = [(m, dy, dx) for m in ((False,) if name == "plain" else (False, True)) for dy, dx in offsets]
        acc = float((np.sum([scores[v] for v in chosen], axis=0).argmax(axis=1) == split.y).mean())
        print(f"| {name} | {len(chosen)} | {100 * acc:.2f} |")


if __name__ == "__main__":
    main()
