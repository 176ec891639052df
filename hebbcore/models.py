"""Layer tables of published networks, for specs, experiments and benchmarks.

Each function returns the ``[[layers]]`` array of a spec as plain tables, so a
caller can embed it in a spec table (``parse_spec``) or write it to TOML.
"""

from __future__ import annotations

from typing import Any

MODE_OF = {"H": "hebbian", "G": "sgd", "R": "random", "F": "frozen"}

# (name, out, kernel or None for linear, teacher groups_per_class, teacher common)
PAPER_TRAINABLE = [
    ("conv1", 96, 5, None, None),
    ("conv2", 128, 3, 8, 48),
    ("conv3", 192, 3, 16, 32),
    ("conv4", 256, 3, 24, 16),
    ("fc5", 300, None, 28, 20),
    ("fc6", 10, None, 1, 0),
]


def paper_net(
    modes: str = "GGGGGG", lr: float = 0.1, aggregation: str = "weighted_mean", competition: str = "masked_wta"
) -> list[dict[str, Any]]:
    """The 6-layer network of Amato et al. (ICIAP 2019), one mode letter per trainable layer.

    ``modes``: six letters from ``H`` (Hebbian), ``G`` (SGD), ``R`` (random),
    ``F`` (frozen), for conv1..conv4, fc5, fc6. Hebbian conv1 learns by WTA; the
    other Hebbian layers by the teacher signal with the paper's kernel groups
    (fc6 as the Hebbian classifier: one kernel per class). ``competition`` is the
    hidden teacher layers' (see the ``teacher`` rule): ``"masked_wta"``, the
    authors' code, lets one kernel of the label's group or the common ones win
    per position; the classifier fc6 never competes.

    conv1 96·5×5 → ReLU → maxpool 2 → BN; conv2 128·3×3 → ReLU → BN;
    conv3 192·3×3 → ReLU → maxpool 2 → BN; conv4 256·3×3 → ReLU → BN;
    fc5 2304→300 → ReLU → BN; dropout 0.5 → fc6 300→10. For 3×32×32 inputs.
    """
    if len(modes) != 6 or any(m not in MODE_OF for m in modes):
        raise ValueError(f"modes: expected six letters from {''.join(MODE_OF)}, got {modes!r}")
    layers: list[dict[str, Any]] = []
    for i, ((name, out, k, groups, common), m) in enumerate(zip(PAPER_TRAINABLE, modes, strict=True)):
        n = i + 1
        if name == "fc5":
            layers.append({"name": "flatten", "type": "flatten"})
        if name == "fc6":
            layers.append({"name": "dropout", "type": "dropout", "p": 0.5})
        layer: dict[str, Any] = {"name": name, "type": "conv" if k else "linear", "train": MODE_OF[m]}
        layer.update({"out_channels": out, "kernel_size": k} if k else {"out_features": out})
        if m == "H":
            if groups is None:
                layer["hebbian"] = {"rule": "wta", "aggregation": aggregation, "lr": lr}
            else:
                options: dict[str, Any] = {"groups_per_class": groups, "common": common}
                if name != "fc6":
                    options["competition"] = competition
                layer["hebbian"] = {"rule": "teacher", "aggregation": aggregation, "lr": lr, "options": options}
        layers.append(layer)
        if name == "fc6":
            break
        layers.append({"name": f"relu{n}", "type": "relu"})
        if name in ("conv1", "conv3"):
            layers.append({"name": f"pool{n}", "type": "pool", "kernel_size": 2})
        layers.append({"name": f"bn{n}", "type": "batchnorm"})
    return layers
