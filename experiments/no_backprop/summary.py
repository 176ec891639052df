"""Test accuracy of every finished run in ``results/``, and mean ± sd over the seeds of each recipe (Markdown).

python experiments/no_backprop/summary.py
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    acc: dict[str, float] = {}
    for metrics in sorted((HERE / "results").glob("*/metrics.json")):
        final = json.loads(metrics.read_text()).get("final")
        if final and final.get("test_acc") is not None:
            acc[metrics.parent.name] = 100 * final["test_acc"]
    print("| run | test % |\n| --- | ---: |")
    for name, value in acc.items():
        print(f"| `{name}` | {value:.2f} |")
    recipes: dict[str, list[float]] = {}
    for name, value in acc.items():
        recipes.setdefault(re.sub(r"_s\d+$", "", name), []).append(value)
    print("\n| recipe | seeds | test % (mean ± sd) |\n| --- | ---: | ---: |")
    for recipe, values in recipes.items():
        sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"| `{recipe}` | {len(values)} | {statistics.mean(values):.2f}{sd} |")


if __name__ == "__main__":
    main()
