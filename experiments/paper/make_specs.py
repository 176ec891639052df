"""Write the specs of the paper's Table 1 and Table 2 (Amato et al., ICIAP 2019) and their manifest.

    python experiments/paper/make_specs.py        # rewrites experiments/paper/*.toml

Every configuration is a mode string, one letter per trainable layer of the
paper's net (conv1..conv4, fc5, classifier fc6): ``G`` SGD, ``H`` Hebbian,
``R`` random (kept at its initial weights). How a string becomes a spec:

- ``G`` layers *below* the first ``H`` layer come from the fully SGD-trained
  net (``t2_GGGGGG``): loaded through ``init_weights`` and ``train = "frozen"``
  (the paper's top-Hebbian and middle-Hebbian rows put Hebbian layers on top of
  the SGD net's bottom);
- a bottom run of ``H`` layers (``H`` from conv1 up) comes from the fully
  Hebbian net (``t2_HHHHHH``): frozen, ``response = "cosine"``. A Hebbian layer
  only sees the layers below it, and the shuffling is seeded, so this is the
  same as training them again;
- other ``H`` layers learn in the run's Hebbian phase, then the ``G`` layers
  above them learn by SGD from scratch (``phases = ["hebbian", "sgd"]``);
- input: ZCA whitening when conv1 is Hebbian, per-channel normalisation else.

Table 1 probes put a classifier (SGD linear, L2 5e-4, or the Hebbian teacher
classifier) on the flattened output of layer k (after its ReLU, pool and BN) of
the trained SGD or Hebbian net, whose layers 1..k are frozen. The layer-5 cells
are the same runs as Table 2 rows, and the manifest says so (``same_as``).

The manifest (``experiments.toml``) lists every row with the paper's number,
the run whose weights it needs (``init_from``) and which layers it takes.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from hebbcore.models import PAPER_TRAINABLE, paper_net  # noqa: E402
from hebbcore.spec import dumps_toml  # noqa: E402

NAMES = [t[0] for t in PAPER_TRAINABLE]  # conv1 .. fc6
CIFAR = {"source": "cifar10"}
SGD_FULL = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.06,
            "lr_decay_after": 10, "lr_decay": 0.5, "keep_best": True,
            "train_acc_images": 5000}  # per-epoch train accuracy on a 5k sample (the final record: all 40k)
SGD_PROBE = dict(SGD_FULL, weight_decay=5e-4)
HEBBIAN = {"epochs": 2, "batch_size": 64}
RESULTS = "experiments/paper/results"

# ------------------------------------------------------------------------------------------- paper values

def span(a: int, b: int) -> str:
    """Layer names a..b (1-based), e.g. "conv1..conv3" or "conv1"."""
    return NAMES[a - 1] if a == b else f"{NAMES[a - 1]}..{NAMES[b - 1]}"


TABLE2 = [  # (mode string, row label, paper accuracy %)
    ("GGGGGG", "full G", 84.95),
    ("HHHHHH", "full H", 28.59),
    *[("H" * k + "G" * (6 - k), f"bottom-H {k} ({span(1, k)} H)", v)
      for k, v in zip(range(1, 6), (84.93, 78.61, 67.87, 57.56, 41.78))],
    *[("R" * k + "G" * (6 - k), f"bottom-R {k} ({span(1, k)} random)", v)
      for k, v in zip(range(1, 6), (80.19, 71.87, 54.96, 45.56, 9.52))],
    *[("G" * (6 - k) + "H" * k, f"top-H {k} ({span(7 - k, 6)} H)", v)
      for k, v in zip(range(1, 6), (84.88, 83.16, 71.18, 50.43, 32.95))],
    *[(m, f"single H at {NAMES[i]}", v) for i, m, v in
      zip(range(1, 5), ("GHGGGG", "GGHGGG", "GGGHGG", "GGGGHG"), (80.36, 80.68, 80.92, 83.75))],
    *[(m, f"pair H at {n}", v) for m, n, v in
      zip(("GHHGGG", "GGHHGG", "GGGHHG"), ("conv2-conv3", "conv3-conv4", "conv4-fc5"), (72.12, 74.98, 76.86))],
    *[(m, f"triple H at {n}", v) for m, n, v in
      zip(("GHHHGG", "GGHHHG"), ("conv2-conv4", "conv3-fc5"), (63.68, 62.43))],
    ("GHHHHG", "conv2..fc5 H", 47.24),
]
T1_SGD_NET_SGD_CLF = (60.71, 66.30, 72.39, 82.69, 84.95)
T1_SGD_NET_HEB_CLF = (46.58, 56.59, 67.79, 82.18, 84.88)
T1_HEB_NET_SGD_CLF = (63.92, 63.81, 58.28, 52.99, 41.78)


def spec_name(modes: str) -> str:
    return f"t2_{modes}"


def cut_index(layers: list[dict], k: int) -> int:
    """Index just past layer k's block (its ReLU, pool and BN) in a paper_net layer list."""
    name = NAMES[k - 1]
    i = next(j for j, l in enumerate(layers) if l["name"] == name)
    while i + 1 < len(layers) and layers[i + 1]["type"] in ("relu", "pool", "batchnorm"):
        i += 1
    return i + 1


def sources(modes: str) -> list[str]:
    """Per trainable layer: 'G' / 'H' (frozen, from the full G / full H net) or '' (trained here)."""
    first_h = modes.find("H")
    out = []
    for i, m in enumerate(modes):
        if m == "G" and 0 <= first_h and i < first_h:
            out.append("G")
        elif m == "H" and modes[: i + 1] == "H" * (i + 1) and modes != "H" * 6:
            out.append("H")
        else:
            out.append("")
    return out


def transforms_for(conv1_hebbian: bool) -> list[dict]:
    return [{"name": "zca", "options": {"eps": 0.1}}] if conv1_hebbian else [{"name": "normalize"}]


def table2_spec(modes: str, label: str) -> tuple[dict, dict]:
    layers = paper_net(modes)
    src = sources(modes)
    frozen = {NAMES[i]: s for i, s in enumerate(src) if s}
    for l in layers:
        if l["name"] in frozen:
            s = frozen[l["name"]]
            l["train"] = "frozen"
            l.pop("hebbian", None)
            if s == "H":
                l["response"] = "cosine"
    trains_hebbian = any(l.get("train") == "hebbian" for l in layers)
    trains_sgd = any(l.get("train") == "sgd" for l in layers)
    phases = [p for p, on in (("hebbian", trains_hebbian), ("sgd", trains_sgd)) if on]
    spec: dict = {"name": spec_name(modes), "seed": 0}
    meta: dict = {}
    if frozen:
        (origin,) = set(frozen.values())
        dep = spec_name("G" * 6 if origin == "G" else "H" * 6)
        spec["init_weights"] = f"{RESULTS}/{spec_name(modes)}/init_weights.npz"
        meta = {"init_from": dep, "init_layers": sorted(frozen, key=NAMES.index)}
    spec["phases"] = phases
    spec["data"] = {**CIFAR, "transforms": transforms_for(modes[0] == "H")}
    spec["hebbian"] = dict(HEBBIAN)
    spec["sgd"] = dict(SGD_FULL) if trains_sgd else {"epochs": 0}
    spec["layers"] = layers
    return spec, {"table": "Table 2", "row": f"{modes}: {label}", **meta}


def probe_spec(net: str, clf: str, k: int) -> tuple[dict, dict]:
    """Classifier ``clf`` ('sgd' or 'hebbian') on layer k of the trained ``net`` ('G' or 'H')."""
    full = paper_net(net * 6)
    layers = full[: cut_index(full, k)]
    for l in layers:
        if l["type"] in ("conv", "linear"):
            l["train"] = "frozen"
            l.pop("hebbian", None)
            if net == "H":
                l["response"] = "cosine"
    if layers[-1]["type"] != "flatten" and all(l["type"] != "flatten" for l in layers):
        layers.append({"name": "flatten", "type": "flatten"})
    head = {"name": "clf", "type": "linear", "out_features": 10, "train": "hebbian" if clf == "hebbian" else "sgd"}
    if clf == "hebbian":
        head["hebbian"] = {"rule": "teacher", "aggregation": "weighted_mean", "lr": 0.1,
                           "options": {"groups_per_class": 1, "common": 0}}
    layers.append(head)
    name = f"t1_{net}net_{clf}clf_L{k}"
    spec = {"name": name, "seed": 0, "init_weights": f"{RESULTS}/{name}/init_weights.npz",
            "phases": ["hebbian"] if clf == "hebbian" else ["sgd"],
            "data": {**CIFAR, "transforms": transforms_for(net == "H")},
            "hebbian": dict(HEBBIAN), "sgd": dict(SGD_PROBE) if clf == "sgd" else {"epochs": 0},
            "layers": layers}
    net_label = "SGD-trained net" if net == "G" else "Hebbian-trained net"
    return spec, {"table": "Table 1", "row": f"{net_label} + {'SGD' if clf == 'sgd' else 'Hebbian'} classifier, layer {k}",
                  "init_from": spec_name(net * 6), "init_layers": NAMES[:k]}


def main() -> None:
    manifest: list[dict] = []
    written = []
    for modes, label, paper in TABLE2:
        spec, meta = table2_spec(modes, label)
        written.append(spec)
        manifest.append({"name": spec["name"], "spec": f"{spec['name']}.toml", "paper": paper, **meta})
    for net, clf, values in (("G", "sgd", T1_SGD_NET_SGD_CLF), ("G", "hebbian", T1_SGD_NET_HEB_CLF),
                             ("H", "sgd", T1_HEB_NET_SGD_CLF)):
        for k in range(1, 6):
            if k == 5:  # the layer-5 cells are Table 2 runs
                same = {"sgd": "GGGGGG", "hebbian": "GGGGGH"}[clf] if net == "G" else "HHHHHG"
                net_label = "SGD-trained net" if net == "G" else "Hebbian-trained net"
                manifest.append({"name": f"t1_{net}net_{clf}clf_L5", "same_as": spec_name(same), "paper": values[4],
                                 "table": "Table 1",
                                 "row": f"{net_label} + {'SGD' if clf == 'sgd' else 'Hebbian'} classifier, layer 5"})
                continue
            spec, meta = probe_spec(net, clf, k)
            written.append(spec)
            manifest.append({"name": spec["name"], "spec": f"{spec['name']}.toml", "paper": values[k - 1], **meta})
    # Not in the paper: the Hebbian classifier on each layer of the Hebbian-trained net is a pipeline with no
    # backpropagation anywhere (issue 5 asks for one above the paper's fully Hebbian 28.59 %).
    for k in range(1, 5):
        spec, meta = probe_spec("H", "hebbian", k)
        meta = {**meta, "table": "Beyond the paper: no backpropagation anywhere",
                "row": f"Hebbian-trained net + Hebbian classifier, layer {k}"}
        written.append(spec)
        manifest.append({"name": spec["name"], "spec": f"{spec['name']}.toml", **meta})
    # A variant, not in the paper: HGGGGG with the frozen Hebbian conv1 passing w·x + b up instead of its clamped
    # cosine (is the bottom-H rows' shared ~3 pp offset the Hebbian layer's response?)
    spec, meta = table2_spec("HGGGGG", "")
    spec["name"] = "t2_HGGGGG_conv1_linear"
    spec["init_weights"] = f"{RESULTS}/{spec['name']}/init_weights.npz"
    next(l for l in spec["layers"] if l["name"] == "conv1")["response"] = "linear"
    written.append(spec)
    manifest.append({"name": spec["name"], "spec": f"{spec['name']}.toml", "paper": 84.93, **meta,
                     "table": "Variants (not in the paper)",
                     "row": "HGGGGG with the Hebbian conv1 answering w·x + b instead of its clamped cosine"})
    for old in HERE.glob("t[12]_*.toml"):
        old.unlink()
    for spec in written:
        header = (f"# {spec['name']}: generated by experiments/paper/make_specs.py; do not edit by hand.\n"
                  f"# Run: python -m hebbcore.experiments run experiments/paper/{spec['name']}.toml --backend torch\n")
        if "init_weights" in spec:
            header += ("# init_weights is written by that command from the weights of the run it depends on\n"
                       "# (see experiments.toml); `hebbcore run` works on this file once it exists.\n")
        (HERE / f"{spec['name']}.toml").write_text(header + dumps_toml(spec))
    (HERE / "experiments.toml").write_text(
        "# The paper's rows: spec, paper accuracy (%), and the run whose weights a spec starts from.\n"
        "# Generated by experiments/paper/make_specs.py.\n\n" + dumps_toml({"experiment": manifest}))
    print(f"wrote {len(written)} specs and experiments.toml ({len(manifest)} rows) to {HERE}")


if __name__ == "__main__":
    main()
