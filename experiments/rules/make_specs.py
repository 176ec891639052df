"""Write the specs of the rule comparison on the paper's net (issue 5) and their manifest.

    python experiments/rules/make_specs.py        # rewrites experiments/rules/*.toml
    python -m hebbcore.experiments run experiments/rules --backend torch
    python -m hebbcore.experiments report experiments/rules

Each *family* trains the hidden layers conv1..fc5 of the paper's net
(Amato et al., ICIAP 2019; ``hebbcore.models.paper_net``) with Hebbian rules only,
on ZCA-whitened CIFAR-10, and the classifier fc6 with the Hebbian teacher rule
(one kernel per class): ``<family>_net`` is a pipeline with no backpropagation
anywhere. Then a linear SGD probe (the paper's Table 1 probe: L2 5e-4, 20
epochs, best validation) reads the flattened output of each layer k (after its
ReLU, pool and batch-norm): ``<family>_probe_L<k>``. The manifest's ``paper``
column holds the paper's Hebbian-net + SGD-classifier numbers, the figures to
beat (63.92/63.81/58.28/52.99/41.78), and 28.59 for the fully Hebbian net.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from hebbcore.models import PAPER_TRAINABLE, paper_net  # noqa: E402
from hebbcore.spec import dumps_toml  # noqa: E402

NAMES = [t[0] for t in PAPER_TRAINABLE]  # conv1 .. fc6
RESULTS = "results"  # relative to the spec files: a spec file's paths resolve against its folder
DATA = {"source": "cifar10", "transforms": [{"name": "zca", "options": {"eps": 0.1}}]}
HEBBIAN = {"epochs": 2, "batch_size": 64}
SGD_PROBE = {
    "epochs": 20,
    "batch_size": 64,
    "lr": 1e-3,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "lr_decay_after": 10,
    "lr_decay": 0.5,
    "keep_best": True,
    "train_acc_images": 5000,
}
PAPER_HNET_SGD_CLF = [63.92, 63.81, 58.28, 52.99, 41.78]
PAPER_FULL_H = 28.59
TEACHER_CLF = {
    "rule": "teacher",
    "aggregation": "weighted_mean",
    "lr": 0.1,
    "options": {"groups_per_class": 1, "common": 0},
}

# A family: (what it is, {layer: (its [layers.hebbian] table, its response)}) for conv1..fc5.
# Sanger-type updates are stable for lr·λ_max < ~1 (λ_max: the largest eigenvalue of the input's correlation:
# ~0.8 for conv1's ZCA-whitened 5×5 patches, 100-250 for the batch-normalised inputs of conv2..fc5, measured on
# a short run), so conv1's rate is ~100× the others'.
HPCA_LR = {"conv1": 0.3, "conv2": 3e-3, "conv3": 3e-3, "conv4": 2e-3, "fc5": 2e-3}
HPCA = {
    n: {"rule": "hpca", "aggregation": "mean", "lr": lr, "options": {"activation": "relu"}} for n, lr in HPCA_LR.items()
}
WTA = {"rule": "wta", "aggregation": "weighted_mean", "lr": 0.1}
FAMILIES: dict[str, tuple[str, dict[str, tuple[dict, str]]]] = {
    "hpca": (
        "Hebbian PCA (Lagani et al. 2021) on conv1..fc5, y = relu(w·x), layer output w·x",
        {n: (HPCA[n], "linear") for n in NAMES[:5]},
    ),
}

REPEATS = [("hpca", 1, (1, 2))]  # (family, seed, probed layers)
# more seeds for layer 1 alone, whose margin over the paper is within the sampling error: conv1 trained by the
# family's rule in a conv1-only net (conv1 learns the same way with or without layers above it)
REPEATS_L1 = [("hpca", seed) for seed in (2, 3, 4)]
# conv1 variants for layer 1 (full data, conv1-only net, seeds 0 and 1): (its [layers.hebbian] table, its response)
L1_VARIANTS = {"hpca_cos": (HPCA["conv1"], "cosine")}
# The paper's authors fit their ZCA on per-channel standardised images (their data.py), where eps = 0.1 smooths
# ~16x less than on the [0, 1] pixels DATA whitens: layer 1 again with that input (seed 0: 62.63 %, below
# the 64.07 % of the same seed on DATA, so no second seed).
AUTHORS_ZCA = {"source": "cifar10", "transforms": [{"name": "normalize"}, {"name": "zca", "options": {"eps": 0.1}}]}
L1_AUTHORS_ZCA = {"hpca": (HPCA["conv1"], "linear")}  # the paper WTA conv1 on it: experiments/paper (Table 1)
# Layer 1 read through the triangle activation max(0, x − mean over kernels) (Coates, Lee & Ng 2011: k-means
# features with it beat hard assignment) instead of the ReLU: conv1 learns as before (what lies above a layer does
# not change what it learns), only the probe's layer-1 block differs. WTA with the cosine response is online
# spherical k-means, the case Coates et al. measured.
# Layer 1 with a stronger smoothing of the whitening (ZCA_EPS): eps added to the eigenvalues of the [0, 1] pixels'
# covariance (DATA: 0.1; the authors' ZCA of standardised images is ~0.006 in these units and did worse: 62.63
# against 64.07). Both variants on the paper's conv1 (WTA) and on HPCA's.
L1_WTA_HPCA = {"wta": (WTA, "cosine"), "hpca": (HPCA["conv1"], "linear")}
ZCA_EPS = (0.3, 1.0)
# Krotov–Hopfield conv1 at full size (the reduced screen's setting, and the p = 3 norm of their paper's CIFAR
# runs): the screen ran 10,000 images for one epoch, 8× fewer updates than here, which a rule that converges
# slowly may need
L1_KROTOV = {
    "krotov": ({"rule": "krotov", "aggregation": "sum", "lr": 0.05, "options": {}}, "cosine"),
    "krotov_p3": ({"rule": "krotov", "aggregation": "sum", "lr": 0.05, "options": {"p": 3.0}}, "cosine"),
}

# Layer 1 through a regularised probe: the paper's probe reaches 92-98 % on the training images (it overfits), so
# the same linear classifier on the same frozen conv1 features, regularised: (tag, what it is, dropout p before the
# linear layer, weight decay, random left-right mirroring of the training images). Screened on HPCA seed 2's conv1
# (choice by validation accuracy), then run on every conv1 of the comparison: HPCA seeds 2-4 and the paper's own
# conv1 rule (WTA, cosine response, the authors' whitening) as the control that tells the probe's share of a gain
# from the rule's.
PROBE_VARIANTS = [
    ("drop", "dropout 0.5 + linear probe", 0.5, 5e-4, False),
    ("wd5e-3", "linear probe with L2 5e-3", 0.0, 5e-3, False),
    ("flip", "linear probe, training images mirrored at random", 0.0, 5e-4, True),
    ("flip_drop", "dropout 0.5 + linear probe, training images mirrored at random", 0.5, 5e-4, True),
]
SCREEN_NET = "hpca_seed2_conv1"  # gets every variant
CHOSEN_PROBE = "flip_drop"  # the screen's best validation accuracy, run on the other conv1 nets
# the paper's conv1 (WTA, clamped-cosine response, on the authors' whitening) in conv1-only nets: the control
L1_PAPER_CONV1 = {"wta_paper": (WTA, "cosine")}
PAPER_CONV1_SEEDS = (0, 1, 2)
PROBE_VARIANT_NETS = [
    SCREEN_NET,
    "hpca_seed3_conv1",
    "hpca_seed4_conv1",
    *(f"l1_{c}_seed{s}_conv1" for c in L1_PAPER_CONV1 for s in PAPER_CONV1_SEEDS),
]

# conv1 screen: candidate rules for conv1 alone (conv1 block + the teacher classifier), each followed by the
# layer-1 probe; run reduced (see README.md) to choose conv1's rule cheaply.
SCREEN: dict[str, tuple[dict, str]] = {
    "wta": (WTA, "cosine"),
    "kwta2": ({"rule": "kwta", "aggregation": "weighted_mean", "lr": 0.1, "options": {"k": 2}}, "cosine"),
    "kwta4": ({"rule": "kwta", "aggregation": "weighted_mean", "lr": 0.1, "options": {"k": 4}}, "cosine"),
    "hpca": (HPCA["conv1"], "linear"),
    "softhebb": ({"rule": "softhebb", "aggregation": "sum", "lr": 0.05, "options": {}}, "linear"),
    "softhebb_cos": ({"rule": "softhebb", "aggregation": "sum", "lr": 0.05, "options": {}}, "cosine"),
    "krotov": ({"rule": "krotov", "aggregation": "sum", "lr": 0.05, "options": {}}, "cosine"),
}


# The wide soft-WTA net of SoftHebb (Journé et al., ICLR 2023), as far as the layer graph allows: per layer a
# batch-norm, a "same" convolution (pad + conv), the triangle activation and pooling (max 4×4 stride 2 after
# layers 1-2; the authors average-pool 2×2 after layer 3, max here), on per-channel normalised images (no ZCA).
WIDE = [("conv1", 96, 5, (4, 2, 1)), ("conv2", 384, 3, (4, 2, 1)), ("conv3", 1536, 3, (2, 2, 0))]
NORMALIZED = {"source": "cifar10", "transforms": [{"name": "normalize"}]}
# The authors' per-layer settings (SoftHebb code): inverse temperatures 1, 0.65, 0.25; triangle powers 0.7, 1.4, 1;
# rates 0.08, 0.005, 0.01; kernels drawn from N(0, (25/sqrt(fan_in))²), so they start with a norm near 25 and shrink
# to the unit sphere under the adaptive rate |‖w‖ − 1|^½.
AUTHORS_PROBE_MILESTONES = [10, 17, 25, 30, 35, 40, 45]  # their CustomStepLR: 0.2, 0.35, ..., 0.9 of 50 epochs
AUTHORS = {"temperature": (1.0, 1 / 0.65, 4.0), "power": (0.7, 1.4, 1.0), "lr": (0.08, 0.005, 0.01), "init_scale": 25.0}
# layer-1 screen of the SoftHebb block: (temperature, lr, init_scale, triangle power, Hebbian batch size) of conv1
# with the softhebb rule (dot response, max-normalised update, adaptive per-kernel rate), run reduced like the conv1
# screen; init_scale 0 keeps the default uniform initialisation
SOFTHEBB_SCREEN = {
    "random": (0.0, 0.0, 0.0, 1.0, 64),
    "t1_lr0.08": (1.0, 0.08, 0.0, 1.0, 64),
    "t0.3_lr0.08": (0.3, 0.08, 0.0, 1.0, 64),
    "t1_lr0.02": (1.0, 0.02, 0.0, 1.0, 64),
    "t0.3_lr0.02": (0.3, 0.02, 0.0, 1.0, 64),
    "authors": (1.0, 0.08, 25.0, 0.7, 64),
    "authors_lr0.02": (1.0, 0.02, 25.0, 0.7, 64),
    "authors_random": (0.0, 0.0, 25.0, 0.7, 64),
    "authors_b10": (1.0, 0.08, 25.0, 0.7, 10),
}


def softhebb_layers(depth: int, temperature, lr, init_scale=0.0, power=1.0) -> list[dict]:
    """Blocks 1..depth of the wide soft-WTA net, then a flatten (its probe goes on top).

    ``temperature``, ``lr`` and ``power`` are one value for every layer or a tuple with one per layer; a
    temperature of 0 leaves the layers random; ``init_scale`` 0 keeps the default initialisation.
    """
    per_layer = lambda v, i: v[i] if isinstance(v, tuple) else v  # noqa: E731
    layers: list[dict] = []
    for n, (name, out, k, (pk, ps, pp)) in enumerate(WIDE[:depth], start=1):
        conv = {"name": name, "type": "conv", "out_channels": out, "kernel_size": k, "response": "linear"}
        if init_scale:
            conv.update(init="normal", init_scale=init_scale)
        t = per_layer(temperature, n - 1)
        if t:
            conv["hebbian"] = {
                "rule": "softhebb",
                "aggregation": "sum",
                "lr": per_layer(lr, n - 1),
                "options": {"temperature": t},
            }
        else:  # the baseline: the layer keeps its random initial weights
            conv["train"] = "random"
        tri = {"name": f"tri{n}", "type": "triangle"}
        if per_layer(power, n - 1) != 1.0:
            tri["power"] = per_layer(power, n - 1)
        layers += [
            {"name": f"bn{n}", "type": "batchnorm"},
            {"name": f"pad{n}", "type": "pad", "padding": k // 2},
            conv,
            tri,
        ]
        if pp:
            layers.append({"name": f"poolpad{n}", "type": "pad", "padding": pp})
        layers.append({"name": f"pool{n}", "type": "pool", "kernel_size": pk, "stride": ps})
    return layers + [{"name": "flatten", "type": "flatten"}]


def softhebb_specs(name: str, depth: int, temperature, lr, init_scale=0.0, power=1.0, batch=64) -> tuple[dict, dict]:
    """(the Hebbian net with a teacher classifier, the SGD linear probe on its last block)."""
    layers = softhebb_layers(depth, temperature, lr, init_scale, power)
    net = {
        "name": name,
        "seed": 0,
        "phases": ["hebbian"],
        "data": NORMALIZED,
        "hebbian": {"epochs": 1, "batch_size": batch},
        "sgd": {"epochs": 0},
        "layers": layers + [{"name": "fc", "type": "linear", "out_features": 10, "hebbian": dict(TEACHER_CLF)}],
    }
    frozen = copy.deepcopy(layers)
    for l in frozen:
        if l["type"] == "conv":
            l["train"] = "frozen"
            l.pop("hebbian", None)
    probe = {
        "name": f"{name}_probe",
        "seed": 0,
        "init_weights": f"{RESULTS}/{name}_probe/init_weights.npz",
        "phases": ["sgd"],
        "data": NORMALIZED,
        "hebbian": {"epochs": 1, "batch_size": 64},
        "sgd": dict(SGD_PROBE),
        "layers": frozen + [{"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"}],
    }
    return net, probe


def cut_index(layers: list[dict], k: int) -> int:
    """Index just past layer k's block (its ReLU, pool and BN)."""
    i = next(j for j, l in enumerate(layers) if l["name"] == NAMES[k - 1])
    while i + 1 < len(layers) and layers[i + 1]["type"] in ("relu", "pool", "batchnorm"):
        i += 1
    return i + 1


def hebbian_layers(rules: dict[str, tuple[dict, str]], depth: int = 5) -> list[dict]:
    """The paper's net up to layer ``depth`` with ``rules``, then the Hebbian teacher classifier ``fc6``."""
    full = paper_net("H" * 6)
    layers = full[: cut_index(full, depth)] if depth < 5 else full
    if depth < 5:
        layers += [{"name": "flatten", "type": "flatten"}, dict(full[-1])]
    for l in layers:
        if l["name"] in rules:
            hebbian, response = rules[l["name"]]
            l["hebbian"] = dict(hebbian)
            l["response"] = response
        elif l["name"] == "fc6":
            l["hebbian"] = dict(TEACHER_CLF)
    return layers


def net_spec(name: str, layers: list[dict], seed: int = 0, data: dict = DATA) -> dict:
    return {
        "name": name,
        "seed": seed,
        "phases": ["hebbian"],
        "data": data,
        "hebbian": dict(HEBBIAN),
        "sgd": {"epochs": 0},
        "layers": layers,
    }


def probe_spec(family: str, full: list[dict], k: int, seed: int = 0, data: dict = DATA) -> dict:
    layers = copy.deepcopy(full[: cut_index(full, k)])
    for l in layers:
        if l["type"] in ("conv", "linear"):
            l["train"] = "frozen"
            l.pop("hebbian", None)
    if all(l["type"] != "flatten" for l in layers):
        layers.append({"name": "flatten", "type": "flatten"})
    layers.append({"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"})
    name = f"{family}_L{k}" if family.startswith("screen_") else f"{family}_probe_L{k}"
    return {
        "name": name,
        "seed": seed,
        "init_weights": f"{RESULTS}/{name}/init_weights.npz",
        "phases": ["sgd"],
        "data": data,
        "hebbian": dict(HEBBIAN),
        "sgd": dict(SGD_PROBE),
        "layers": layers,
    }


def conv1_pair(
    net_name: str,
    family: str,
    conv1: tuple[dict, str],
    seed: int,
    table: str,
    label: str,
    probe_row: str,
    data: dict = DATA,
    probe_activation: str = "relu",
) -> tuple[list[dict], list[dict]]:
    """A conv1-only net (conv1 learning by ``conv1`` = (its [layers.hebbian] table, its response), then the teacher
    classifier) and the SGD probe on its layer 1: their specs and manifest rows. ``probe_activation`` "triangle"
    replaces the probe's ReLU after conv1 by the triangle activation."""
    full = hebbian_layers({"conv1": conv1}, depth=1)
    net, probe = net_spec(net_name, full, seed, data), probe_spec(family, full, 1, seed, data)
    if probe_activation != "relu":
        i = next(j for j, l in enumerate(probe["layers"]) if l["name"] == "relu1")
        probe["layers"][i] = {"name": "tri1", "type": probe_activation}
    return [net, probe], [
        {
            "name": net["name"],
            "spec": f"{net['name']}.toml",
            "table": table,
            "row": f"{label}: conv1 + teacher classifier",
        },
        {
            "name": probe["name"],
            "spec": f"{probe['name']}.toml",
            "table": table,
            "paper": PAPER_HNET_SGD_CLF[0],
            "goal": "beat",
            "row": f"{label}: {probe_row}",
            "init_from": net["name"],
            "init_layers": ["conv1"],
        },
    ]


def main() -> None:
    manifest, written = [], []
    for family, (about, rules) in FAMILIES.items():
        full = hebbian_layers(rules)
        spec = net_spec(f"{family}_net", full)
        written.append(spec)
        manifest.append(
            {
                "name": spec["name"],
                "spec": f"{spec['name']}.toml",
                "paper": PAPER_FULL_H,
                "goal": "beat",
                "table": f"{family}: {about}",
                "row": "fully Hebbian (teacher classifier), vs paper full H",
            }
        )
        for k in range(1, 6):
            spec = probe_spec(family, full, k)
            written.append(spec)
            manifest.append(
                {
                    "name": spec["name"],
                    "spec": f"{spec['name']}.toml",
                    "paper": PAPER_HNET_SGD_CLF[k - 1],
                    "goal": "beat",
                    "table": f"{family}: {about}",
                    "row": f"SGD linear probe on layer {k}, vs paper Hebbian net + SGD classifier",
                    "init_from": f"{family}_net",
                    "init_layers": NAMES[:k],
                }
            )
    # the same family again with another seed (initial weights, batch order), for the layers whose margin is thin
    for family, seed, layers in REPEATS:
        about, rules = FAMILIES[family]
        full = hebbian_layers(rules)
        name = f"{family}_seed{seed}"
        spec = net_spec(f"{name}_net", full, seed)
        written.append(spec)
        manifest.append(
            {
                "name": spec["name"],
                "spec": f"{spec['name']}.toml",
                "paper": PAPER_FULL_H,
                "goal": "beat",
                "table": f"{family}, seed {seed}",
                "row": "fully Hebbian (teacher classifier), vs paper full H",
            }
        )
        for k in layers:
            spec = probe_spec(name, full, k, seed)
            written.append(spec)
            manifest.append(
                {
                    "name": spec["name"],
                    "spec": f"{spec['name']}.toml",
                    "paper": PAPER_HNET_SGD_CLF[k - 1],
                    "goal": "beat",
                    "table": f"{family}, seed {seed}",
                    "row": f"SGD linear probe on layer {k}, vs paper Hebbian net + SGD classifier",
                    "init_from": f"{name}_net",
                    "init_layers": NAMES[:k],
                }
            )
    pairs = [
        (
            f"{family}_seed{seed}_conv1",
            f"{family}_seed{seed}",
            FAMILIES[family][1]["conv1"],
            seed,
            f"{family}, layer 1, more seeds",
            f"seed {seed}",
            "SGD linear probe on layer 1, vs paper Hebbian net + SGD classifier",
        )
        for family, seed in REPEATS_L1
    ]
    pairs += [
        (
            f"l1_{cand}_seed{seed}_conv1",
            f"l1_{cand}_seed{seed}",
            (hebbian, response),
            seed,
            "layer-1 variants",
            f"layer 1, {hebbian['rule']} learning, response {response}, seed {seed}",
            "SGD linear probe on layer 1",
        )
        for cand, (hebbian, response) in L1_VARIANTS.items()
        for seed in (0, 1)
    ]
    pairs += [
        (
            f"l1_{cand}_authors_zca_seed{seed}_conv1",
            f"l1_{cand}_authors_zca_seed{seed}",
            (hebbian, response),
            seed,
            "layer 1 on the authors' whitening (ZCA of per-channel standardised images)",
            f"layer 1, {hebbian['rule']} learning, response {response}, ZCA of standardised images, seed {seed}",
            "SGD linear probe on layer 1",
            AUTHORS_ZCA,
        )
        for cand, (hebbian, response) in L1_AUTHORS_ZCA.items()
        for seed in (0,)
    ]
    pairs += [
        (
            f"l1_{cand}_tri_seed{seed}_conv1",
            f"l1_{cand}_tri_seed{seed}",
            (hebbian, response),
            seed,
            "layer 1 through the triangle activation",
            f"layer 1, {hebbian['rule']} learning, response {response}, seed {seed}",
            "triangle activation + SGD linear probe on layer 1",
            DATA,
            "triangle",
        )
        for cand, (hebbian, response) in L1_WTA_HPCA.items()
        for seed in (0,)
    ]
    pairs += [
        (
            f"l1_{cand}_zca{eps:g}_seed{seed}_conv1",
            f"l1_{cand}_zca{eps:g}_seed{seed}",
            (hebbian, response),
            seed,
            "layer 1 on a smoother whitening",
            f"layer 1, {hebbian['rule']} learning, response {response}, ZCA eps {eps:g}, seed {seed}",
            "SGD linear probe on layer 1",
            {"source": "cifar10", "transforms": [{"name": "zca", "options": {"eps": eps}}]},
        )
        for cand, (hebbian, response) in L1_WTA_HPCA.items()
        for eps in ZCA_EPS
        for seed in (0,)
    ]
    pairs += [
        (
            f"l1_{cand}_seed{seed}_conv1",
            f"l1_{cand}_seed{seed}",
            (hebbian, response),
            seed,
            "layer 1 learned by Krotov–Hopfield, full size",
            f"layer 1, {hebbian['rule']} learning {hebbian['options']}, response {response}, seed {seed}",
            "SGD linear probe on layer 1",
        )
        for cand, (hebbian, response) in L1_KROTOV.items()
        for seed in (0,)
    ]
    pairs += [
        (
            f"l1_{cand}_seed{seed}_conv1",
            f"l1_{cand}_seed{seed}",
            (hebbian, response),
            seed,
            "layer 1 learned as in the paper (control of the regularised probes)",
            f"layer 1, the paper's conv1 ({hebbian['rule']} learning, response {response}, the authors' whitening), "
            f"seed {seed}",
            "SGD linear probe on layer 1 (the paper's probe)",
            AUTHORS_ZCA,
        )
        for cand, (hebbian, response) in L1_PAPER_CONV1.items()
        for seed in PAPER_CONV1_SEEDS
    ]
    pairs += [
        (
            f"screen_{cand}",
            f"screen_{cand}",
            (hebbian, response),
            0,
            "conv1 screen",
            f"conv1 screen: {hebbian['rule']} {hebbian.get('options', {})}, lr {hebbian['lr']}, response {response}",
            "layer-1 probe",
        )
        for cand, (hebbian, response) in SCREEN.items()
    ]
    for pair in pairs:
        specs, rows = conv1_pair(*pair)
        written += specs
        manifest += rows
    by_name = {spec["name"]: spec for spec in written}
    # (the run the probe starts from, the probe it varies, layer k, table)
    varied = [
        (net_name, net_name.replace("_conv1", "_probe_L1"), 1, "layer 1 through a regularised probe")
        for net_name in PROBE_VARIANT_NETS
    ]
    # the chosen probe on layers 2-5 of the HPCA net too: one probe for every layer
    varied += [
        ("hpca_net", f"hpca_probe_L{k}", k, "hpca through the regularised probe, every layer") for k in range(2, 6)
    ]
    for net_name, base_name, k, table in varied:
        base = by_name[base_name]
        for tag, label, p, wd, hflip in PROBE_VARIANTS:
            if net_name != SCREEN_NET and tag != CHOSEN_PROBE:
                continue
            spec = copy.deepcopy(base)
            spec["name"] = f"{base['name']}_{tag}"
            spec["init_weights"] = f"{RESULTS}/{spec['name']}/init_weights.npz"
            spec["sgd"]["weight_decay"] = wd
            if hflip:
                spec["sgd"]["hflip"] = True
            if p:
                spec["layers"].insert(len(spec["layers"]) - 1, {"name": "drop", "type": "dropout", "p": p})
            written.append(spec)
            manifest.append(
                {
                    "name": spec["name"],
                    "spec": f"{spec['name']}.toml",
                    "table": table,
                    "paper": PAPER_HNET_SGD_CLF[k - 1],
                    "goal": "beat",
                    "row": f"{net_name.replace('_conv1', '')}: {label} on layer {k}",
                    "init_from": net_name,
                    "init_layers": NAMES[:k],
                }
            )
    wide = [
        (
            "softhebb_wide",
            3,
            (AUTHORS["temperature"], AUTHORS["lr"], AUTHORS["init_scale"], AUTHORS["power"], 10),
            "SoftHebb-style wide net (96/384/1536), one Hebbian epoch, the authors' per-layer settings, batch 10 (the "
            "block-1 screen's best): linear probe "
            "on layer 3 (SoftHebb reports 80.3 %)",
            80.3,
        )
    ]
    wide += [
        (
            f"sh1_{tag}",
            1,
            setup,
            (
                f"SoftHebb block 1 screen: temperature {setup[0]}, lr {setup[1]}"
                if setup[0]
                else "SoftHebb block 1 screen: random conv1 (baseline)"
            )
            + (f", N(0, ({setup[2]:g}/sqrt(fan_in))²) init, triangle power {setup[3]}" if setup[2] else "")
            + (f", batch {setup[4]}" if setup[4] != 64 else "")
            + ": linear probe on layer 1",
            None,
        )
        for tag, setup in SOFTHEBB_SCREEN.items()
    ]
    for name, depth, setup, row, target in wide:
        net, probe = softhebb_specs(name, depth, *setup)
        written += [net, probe]
        table = "SoftHebb-style net" if depth == 3 else "SoftHebb block 1 screen"
        manifest += [
            {
                "name": net["name"],
                "spec": f"{net['name']}.toml",
                "table": table,
                "row": row.split(":")[0] + ": Hebbian teacher classifier",
            },
            {
                "name": probe["name"],
                "spec": f"{probe['name']}.toml",
                "table": table,
                "row": row,
                "init_from": net["name"],
                "init_layers": [w[0] for w in WIDE[:depth]],
                **({"paper": target, "goal": "beat"} if target else {}),
            },
        ]
        if name == "softhebb_wide":  # the authors' classifier: dropout 0.5 before the linear layer; average pool 3
            # (the probes without batch-norm saw a training loss of ~230: features of a very large scale)
            # avg_dropout_adam: that classifier trained as in the authors' code (Adam at 1e-3 without weight decay,
            # 50 epochs, the rate halved after epochs 10, 17, 25, 30, 35, 40, 45)
            for tag, avg, bn, label in (
                ("dropout", False, False, "dropout 0.5 + linear probe on layer 3"),
                ("avg_dropout", True, False, "average pool 3, dropout 0.5 + linear probe on layer 3"),
                ("avg_bn_dropout", True, True, "average pool 3, batch-norm, dropout 0.5 + linear probe on layer 3"),
                (
                    "avg_dropout_adam",
                    True,
                    False,
                    "average pool 3, dropout 0.5 + linear probe on layer 3, "
                    "trained like the authors' (Adam, 50 epochs)",
                ),
            ):
                drop = copy.deepcopy(probe)
                drop["name"] = f"{name}_probe_{tag}"
                if tag.endswith("_adam"):
                    drop["sgd"] = {
                        **SGD_PROBE,
                        "optimizer": "adam",
                        "epochs": 50,
                        "weight_decay": 0.0,
                        "lr_milestones": AUTHORS_PROBE_MILESTONES,
                    }
                    for key in ("lr_decay_after", "momentum", "nesterov"):
                        drop["sgd"].pop(key, None)
                drop["init_weights"] = f"{RESULTS}/{drop['name']}/init_weights.npz"
                drop["layers"].insert(len(drop["layers"]) - 1, {"name": "drop", "type": "dropout", "p": 0.5})
                if bn:
                    drop["layers"].insert(len(drop["layers"]) - 2, {"name": "bnf", "type": "batchnorm", "train": "sgd"})
                if avg:
                    next(l for l in drop["layers"] if l["name"] == "pool3")["mode"] = "avg"
                written.append(drop)
                manifest.append(
                    {
                        "name": drop["name"],
                        "spec": f"{drop['name']}.toml",
                        "table": table,
                        "row": row.replace("linear probe on layer 3", label),
                        "init_from": name,
                        "init_layers": [w[0] for w in WIDE[:depth]],
                        "paper": target,
                        "goal": "beat",
                    }
                )
            # SoftHebb's protocol: the Hebbian net and the classifier on all 50,000 training images (no validation
            # split, the last epoch's test accuracy), the authors' classifier and schedule as above
            net50 = copy.deepcopy(net)
            net50["name"] = f"{name}_50k"
            net50["data"] = {**copy.deepcopy(NORMALIZED), "options": {"train_split": 50000}}
            probe50 = copy.deepcopy(drop)  # the last of the loop: avg_dropout_adam
            probe50["name"] = f"{name}_50k_probe_avg_dropout_adam"
            probe50["init_weights"] = f"{RESULTS}/{probe50['name']}/init_weights.npz"
            probe50["data"] = copy.deepcopy(net50["data"])
            probe50["sgd"]["keep_best"] = False
            written += [net50, probe50]
            manifest += [
                {
                    "name": net50["name"],
                    "spec": f"{net50['name']}.toml",
                    "table": table,
                    "row": row.split(":")[0] + ", trained on all 50,000 images: Hebbian teacher classifier",
                },
                {
                    "name": probe50["name"],
                    "spec": f"{probe50['name']}.toml",
                    "table": table,
                    "row": row.split(":")[0] + ", trained on all 50,000 images (SoftHebb's protocol: no "
                    "validation, last epoch): average pool 3, dropout 0.5 + linear probe on layer 3, trained "
                    "like the authors' (Adam, 50 epochs) (SoftHebb reports 80.3 %)",
                    "init_from": net50["name"],
                    "init_layers": [w[0] for w in WIDE[:depth]],
                    "paper": target,
                    "goal": "beat",
                },
            ]
    for old in HERE.glob("*.toml"):
        old.unlink()
    for spec in written:
        header = (
            f"# {spec['name']}: generated by experiments/rules/make_specs.py; do not edit by hand.\n"
            f"# Run: python -m hebbcore.experiments run experiments/rules/{spec['name']}.toml --backend torch\n"
        )
        (HERE / f"{spec['name']}.toml").write_text(header + dumps_toml(spec))
    (HERE / "experiments.toml").write_text(
        "# Hebbian rules on the paper's net: spec, the paper's figure to beat (%), and the run a probe starts from.\n"
        "# Generated by experiments/rules/make_specs.py.\n\n" + dumps_toml({"experiment": manifest})
    )
    print(f"wrote {len(written)} specs and experiments.toml ({len(manifest)} rows) to {HERE}")


if __name__ == "__main__":
    main()
