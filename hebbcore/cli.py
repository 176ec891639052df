"""The ``hebbcore`` command line: ``run``, ``validate``, ``plugins``.

Errors a user can fix (a bad spec, a missing file, an unavailable backend) are
printed as one line, ``hebbcore: error: ...``, with exit status 2 (spec and
usage) or 1 (everything else); no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import HebbcoreError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hebbcore", description="Hebbian learning for convolutional networks.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train a spec and write metrics.json, weights.npz and spec.toml")
    r.add_argument("spec", help="path of a TOML run spec")
    r.add_argument("--backend", default="numpy", help="array backend: numpy, torch, cupy or a plugin's (default numpy)")
    r.add_argument("--device", default=None, help="device of the backend, e.g. cpu, cuda, cuda:1 (default: the best one)")
    r.add_argument("--out", default=None, help="run directory (default runs/<spec name>)")
    r.add_argument("--no-progress", action="store_true", help="never draw progress bars")
    v = sub.add_parser("validate", help="check a spec and print it resolved")
    v.add_argument("spec")
    sub.add_parser("plugins", help="list registered rules, aggregations, backends, datasets, transforms")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except HebbcoreError as exc:
        msg = " ".join(str(exc).split("\n"))
        print(f"hebbcore: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hebbcore: interrupted; files already written are complete", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from .plugin_manager import default_registry
    from .spec import dumps_toml, load_spec, spec_to_table

    registry = default_registry()
    if args.command == "plugins":
        for kind in ("rule", "aggregation", "backend", "dataset", "transform"):
            entries = [f"{n} ({registry.origin[(kind, n)]})" for n in registry.names(kind)]
            print(f"{kind}s: {', '.join(entries) or '(none)'}")
        return 0
    spec = load_spec(args.spec, registry)
    if args.command == "validate":
        sys.stdout.write(dumps_toml(spec_to_table(spec)))
        return 0
    from .runner import run

    out = args.out or f"runs/{spec.name}"
    result = run(spec, registry, backend=args.backend, out_dir=out, device=args.device,
                 progress=False if args.no_progress else None)
    final = result.metrics["final"]
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in final.items()}
    print(f"{spec.name}: {json.dumps(shown)} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
