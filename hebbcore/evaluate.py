"""Evaluate a finished run again: its weights on the splits of its data, optionally with test-time augmentation.

``hebbcore evaluate DIR [--hflip] [--shift N]`` reads the run's ``spec.toml`` and ``weights.npz`` (nothing in the
directory is written) and measures the accuracy of each split the spec's data source gives. With ``mirror`` each
image's class scores are summed with those of its left-right mirror image before the arg-max, the usual companion
of a probe trained on mirrored images (``sgd.hflip``); with ``shift`` N also with those of its four translations
by N pixels (and, with ``mirror``, theirs mirrored: 10 views), the border reflected from the image
(:func:`hebbcore.network.image_views`). Each figure is recorded beside the plain one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import DataError, HebbcoreError
from .interfaces import Dataset, check_hflip_inputs
from .io import read_npz
from .network import Network, image_views
from .plugin_manager import Registry
from .runner import load_dataset, make_backend
from .spec import parse_spec
from .specfile import read_spec_table

SPLITS = ("train", "val", "test")


def load_finished_run(
    run_dir: str | Path, registry: Registry, backend: str = "numpy", device: str | None = None
) -> tuple[Dataset, Network]:
    """The data of the run in ``run_dir`` and its network with the trained weights (``weights.npz``), which must
    answer one score per class."""
    run_dir = Path(run_dir)
    missing = [f for f in ("spec.toml", "weights.npz") if not (run_dir / f).is_file()]
    if missing:
        raise DataError(
            f"{str(run_dir)!r} has no {' and no '.join(missing)}; evaluate needs a finished run's spec and weights "
            f"(committed results keep no weights: run it again into a folder of your own)"
        )
    table, _ = read_spec_table(run_dir / "spec.toml")
    table.pop("init_weights", None)  # the run's trained weights replace its initial ones, which may be gone
    spec = parse_spec(table, registry, str(run_dir / "spec.toml"), against_data=True)
    ops = make_backend(registry, backend, device)
    data = load_dataset(spec, registry)
    net = Network(spec, data.input_shape, data.n_classes, ops, registry)
    weights = run_dir / "weights.npz"
    net.load_state_dict(read_npz(weights, "the run's weights"), source=str(weights), strict=True)
    if not net.is_classifier:
        raise HebbcoreError(f"{str(run_dir)!r}: the network's output is not one score per class; nothing to evaluate")
    return data, net


def evaluate_run(
    run_dir: str | Path,
    registry: Registry,
    backend: str = "numpy",
    device: str | None = None,
    splits: tuple[str, ...] = ("test",),
    mirror: bool = False,
    shift: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{split: {"images": n, "accuracy": a[, "mirror_averaged_accuracy": b][, "views": v,
    "views_averaged_accuracy": c]}}`` of the run in ``run_dir`` (``views``: with ``shift``, how many views)."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise HebbcoreError(f"splits: expected some of {', '.join(SPLITS)}, got {', '.join(unknown)}")
    if shift < 0:
        raise HebbcoreError(f"shift: expected a number of pixels >= 0, got {shift}")
    data, net = load_finished_run(run_dir, registry, backend, device)
    if shift and len(data.input_shape) == 3 and shift >= min(data.input_shape[1:]):
        h, w = data.input_shape[1:]
        raise HebbcoreError(f"shift: expected fewer pixels than the images' height and width ({h}x{w}), got {shift}")
    out: dict[str, dict[str, Any]] = {}
    views = image_views(mirror, shift)
    for name in splits:
        split = getattr(data, name)
        if not len(split):
            raise DataError(f"the {name} split of {str(Path(run_dir) / 'spec.toml')!r} is empty")
        if mirror or shift:
            check_hflip_inputs(tuple(split.x.shape), "test-time augmentation (--hflip, --shift): the network's inputs")
        scores = net.view_scores(split.x, views)  # each view once; the figures below sum some of them

        def accuracy(which: list[int], split=split, scores=scores) -> float:
            return float((scores[which].sum(axis=0).argmax(axis=1) == split.y).mean())

        record: dict[str, Any] = {"images": len(split), "accuracy": accuracy([0])}
        if mirror:
            record["mirror_averaged_accuracy"] = accuracy([0, views.index((True, 0, 0))])
        if shift:
            record["views"] = len(views)
            record["views_averaged_accuracy"] = accuracy(list(range(len(views))))
        out[name] = record
    return out


def format_evaluation(result: dict[str, dict[str, Any]]) -> str:
    """One line per split: ``test: 80.92 % of 10000 images; mirror-averaged scores: 81.40 %``."""
    lines = []
    for name, r in result.items():
        line = f"{name}: {100 * r['accuracy']:.2f} % of {r['images']} images"
        if "mirror_averaged_accuracy" in r:
            line += f"; mirror-averaged scores: {100 * r['mirror_averaged_accuracy']:.2f} %"
        if "views_averaged_accuracy" in r:
            line += f"; averaged over {r['views']} views: {100 * r['views_averaged_accuracy']:.2f} %"
        lines.append(line)
    return "\n".join(lines)
