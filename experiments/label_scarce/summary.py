"""Mean ± sd test accuracy per label fraction of the finished runs in ``results/`` (a Markdown table).

python experiments/label_scarce/summary.py [RESULTS]   (default: this folder's results/, the committed runs)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(results: Path = HERE / "results") -> None:
    if not results.is_dir():
        raise SystemExit(f"summary.py: {str(results)!r} is not a folder of results")
    runs: dict[tuple[str, int], list[float]] = {}
    for metrics in sorted(results.glob("*_p*_s*/metrics.json")):
        m = json.loads(metrics.read_text())
        if not m.get("final"):
            continue
        kind, pct, _ = metrics.parent.name.rsplit("_", 2)
        runs.setdefault((kind, int(pct[1:])), []).append(100 * m["final"]["test_acc"])
    print("| labels | Hebbian conv1 (WTA) + probe % | Hebbian conv1 (HPCA) + probe % | SGD from scratch % |")
    print("| ---: | ---: | ---: | ---: |")
    for pct in sorted({p for _, p in runs}):
        cells = []
        for kind in ("hebbian_probe", "hpca_probe", "sgd_scratch"):
            acc = runs.get((kind, pct), [])
            sd = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
            seeds = f"{len(acc)} seed{'s' if len(acc) > 1 else ''}"
            cells.append(f"{statistics.mean(acc):.2f}{sd} ({seeds})" if acc else "not run yet")
        print(f"| {pct} % | {' | '.join(cells)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results")
