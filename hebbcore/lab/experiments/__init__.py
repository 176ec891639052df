"""Run sets of specs resumably, and report measured accuracies against published ones.

    python -m hebbcore.experiments run experiments/paper --only t2_GGGGGG,t2_HHHHHH --backend torch
    python -m hebbcore.experiments run experiments/paper            # every row of the folder
    python -m hebbcore.experiments report experiments/paper          # REPORT.md and plots

A folder of experiments holds TOML run specs and a manifest, ``experiments.toml``,
with one ``[[experiment]]`` per reported row:

- ``name``: the run's name (its results live in ``<results>/<name>/``);
- ``spec``: the spec file (relative to the folder; several rows may share one), ``set``: ``"key.path=value"``
  settings applied to it, as ``hebbcore run --set`` does; or ``same_as``: the name of
  another row whose run this row reports (one run may fill two table cells);
- ``paper``: the published accuracy in percent; ``table`` and ``row``: labels;
- ``goal``: ``"match"`` (default: within the tolerance of ``paper``) or ``"beat"``
  (above ``paper``), what the report checks;
- ``repeats``: the row this run repeats with another seed; the report gives
  each such row's spread over its seeds (mean ± sd) and judges the row by it;
- ``init_from`` and ``init_layers``: the run whose ``weights.npz`` this spec
  starts from, and the trainable layers taken from it (their batch-norms come
  along). The weights are written to ``<results>/<name>/init_weights.npz``
  and the spec's ``init_weights`` points there.

``run`` runs the dependencies first and skips runs whose ``metrics.json``
already has a ``final`` record (``--force`` reruns them), so a killed command
continues where it stopped; a run cut off mid-way continues from its last
checkpoint (each epoch's end, or every ``--checkpoint-every`` batches) when its
spec is unchanged, and the replayed batches give the weights an uninterrupted
run would have. A finished run
whose spec file has changed since (compared resolved, with the run's own
overrides) is not rerun silently: ``run`` and ``--dry-run`` name the changed
fields, keep its results, fail the runs that need it and exit 1. When a spec's
bottom layers are all ``frozen`` or ``random``, their output is computed once
and kept in memory, and only the layers above train on it (one
:class:`hebbcore.features.FeatureCache` for all the rows of a command); the
run's ``spec.toml`` and ``weights.npz`` still describe the whole network.

``report`` writes ``REPORT.md`` (measured test accuracy vs the paper for every
row, "not run yet" where there is no result) and PNG plots (layer-1 kernels,
accuracy per layer) into the results folder.
"""

from .cli import main
from .manifest import Experiment, Overrides, collect, load_manifest, order_with_dependencies
from .orchestrate import ExperimentRunner
from .report import write_report
from .results import interrupted_position, is_done, read_metrics, stale_fields, write_init_weights

__all__ = [
    "Experiment",
    "ExperimentRunner",
    "Overrides",
    "collect",
    "interrupted_position",
    "is_done",
    "load_manifest",
    "main",
    "order_with_dependencies",
    "read_metrics",
    "stale_fields",
    "write_init_weights",
    "write_report",
]
