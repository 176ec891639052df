"""Every backend keeps the base Ops signatures (thinc-style), and numpy runs never import torch or cupy."""

import inspect
import subprocess
import sys

from hebbcore.ops import Ops


def test_every_backend_keeps_base_signatures(registry):
    public = {n for klass in Ops.__mro__ for n, m in vars(klass).items() if callable(m) and not n.startswith("_")}
    base = {n: inspect.signature(getattr(Ops, n)) for n in public}  # wherever in hebbcore.ops it is defined
    assert {"asarray", "conv2d", "kernel_affine", "lower_gram_product"} <= set(base) and len(base) > 40
    for name, cls in registry.tables["backend"].items():
        for meth, sig in base.items():
            impl = inspect.signature(getattr(cls, meth))
            assert list(impl.parameters) == list(sig.parameters), f"{name}.{meth}{impl} != Ops.{meth}{sig}"
            for p, q in zip(impl.parameters.values(), sig.parameters.values(), strict=True):
                assert p.kind == q.kind and p.default == q.default, f"{name}.{meth}: parameter {p.name} differs"


def test_builtin_backends_registered(registry):
    assert {"numpy", "torch", "cupy"} <= set(registry.names("backend"))


def test_numpy_run_imports_no_framework(tmp_path):
    code = (
        "import sys\n"
        "from hebbcore.cli import main\n"
        f"rc = main(['run', 'examples/tiny.toml', '--out', {str(tmp_path / 'r')!r}, '--no-progress'])\n"
        "assert rc == 0, rc\n"
        "bad = [m for m in ('torch', 'cupy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    from conftest import REPO

    subprocess.run(
        [sys.executable, "-c", code.replace("examples/tiny.toml", str(REPO / "examples/tiny.toml"))],
        check=True,
        capture_output=True,
        text=True,
    )
