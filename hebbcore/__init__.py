"""hebbcore: Hebbian learning for convolutional networks.

Plugins mark their hook implementations with :data:`hookimpl` and register
through the ``hebbcore`` entry-point group; :mod:`hebbcore.hookspecs` lists
every hook.
"""

import pluggy

__version__ = "0.1.0"

PROJECT = "hebbcore"
hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["hookimpl", "hookspec", "PROJECT", "__version__"]
