"""Pictures of a run: kernel grids, learning curves, a confusion matrix (matplotlib, optional).

``write_run_plots(run_dir)`` reads ``metrics.json`` and ``weights.npz`` and
writes PNGs under ``run_dir/plots/``; ``hebbcore plot RUN_DIR`` calls it. The
runner calls it at the end of a run when matplotlib is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import read_json_table, read_npz


def kernel_grid(w: np.ndarray, cols: int = 12, pad: int = 1) -> np.ndarray:
    """Conv kernels ``(K, C, kh, kw)`` tiled into one RGB image, each kernel scaled to [0, 1] on its own.

    Three or more input channels show the first three as RGB; fewer show the first as grey.
    """
    k, c, kh, kw = w.shape
    cols = min(cols, k)
    rows = -(-k // cols)
    img = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, 3), dtype=np.float32)
    for i in range(k):
        ker = w[i, :3] if c >= 3 else np.repeat(w[i, :1], 3, axis=0)
        ker = ker.transpose(1, 2, 0)
        lo, hi = float(ker.min()), float(ker.max())
        ker = (ker - lo) / (hi - lo) if hi > lo else np.full_like(ker, 0.5)
        r, q = divmod(i, cols)
        y0, x0 = pad + r * (kh + pad), pad + q * (kw + pad)
        img[y0 : y0 + kh, x0 : x0 + kw] = ker
    return img


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_kernel_grid(w: np.ndarray, path: Path, title: str = "") -> Path:
    plt = _pyplot()
    img = kernel_grid(w)
    fig, ax = plt.subplots(figsize=(max(3, img.shape[1] / 12), max(2, img.shape[0] / 12) + 0.4))
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_learning_curves(metrics: dict, path: Path) -> Path | None:
    epochs = metrics.get("epochs") or []
    if not any(e.get(k) is not None for e in epochs for k in ("train_acc", "val_acc", "test_acc")):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = list(range(1, len(epochs) + 1))
    for key, style in (("train_acc", "-o"), ("val_acc", "-s"), ("test_acc", "-^")):
        ys = [e.get(key) for e in epochs]
        if any(v is not None for v in ys):
            ax.plot(xs, [np.nan if v is None else 100 * v for v in ys], style, label=key.replace("_acc", ""))
    labels = [f"{e['phase'][0].upper()}{e['epoch']}" for e in epochs]
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_xlabel("epoch (H: Hebbian phase, S: SGD phase)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{metrics.get('spec', '')} on {metrics.get('backend', '')}/{metrics.get('device', '')}")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_confusion(cm: np.ndarray, path: Path, class_names: list[str] | None = None, title: str = "") -> Path:
    plt = _pyplot()
    cm = np.asarray(cm)
    n = cm.shape[0]
    names = class_names or [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_run_plots(run_dir: str | Path) -> list[Path]:
    """Every plot a run directory supports; returns the files written."""
    run_dir = Path(run_dir)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    made: list[Path] = []
    metrics = read_json_table(run_dir / "metrics.json", "the run's metrics")
    p = save_learning_curves(metrics, out / "learning_curves.png")
    if p:
        made.append(p)
    final = metrics.get("final") or {}
    if final.get("confusion"):
        made.append(
            save_confusion(
                np.array(final["confusion"]),
                out / "confusion.png",
                metrics.get("class_names") or None,
                f"{final.get('confusion_split', '')} split",
            )
        )
    wfile = run_dir / "weights.npz"
    if wfile.is_file():
        weights = read_npz(wfile, "the run's weights")
        convs = [k for k, v in weights.items() if k.endswith(".weight") and v.ndim == 4]
        if convs:
            name, w = convs[0].split(".")[0], weights[convs[0]]
            made.append(
                save_kernel_grid(
                    w, out / f"kernels_{name}.png", f"{name}: {w.shape[0]} kernels {w.shape[2]}x{w.shape[3]}"
                )
            )
    return made
