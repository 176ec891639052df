"""Every hook a hebbcore plugin may implement.

A plugin is any module or object with functions of these names marked with
:data:`hebbcore.hookimpl`. It is found through the ``hebbcore`` entry-point
group (``[project.entry-points.hebbcore]`` in its ``pyproject.toml``), or
registered by hand with :func:`hebbcore.plugin_manager.make_plugin_manager`'s
``plugins=``. A function whose name starts with ``hebbcore_`` but matches no
hook here is an error (``check_pending``), so a misspelled hook fails loudly.

Registration hooks return *classes*; names must be unique across all plugins.
"""

from __future__ import annotations

from typing import Any

from . import hookspec


@hookspec
def hebbcore_register_rules() -> list[type]:
    """Return :class:`hebbcore.interfaces.LearningRule` subclasses.

    Each class's ``name`` is what a spec writes in ``[layers.hebbian] rule = "..."``.
    """


@hookspec
def hebbcore_register_layers() -> list[type]:
    """Return :class:`hebbcore.layers.Layer` subclasses (``[[layers]] type = "..."``)."""


@hookspec
def hebbcore_register_aggregations() -> list[type]:
    """Return :class:`hebbcore.interfaces.Aggregation` subclasses (``aggregation = "..."``)."""


@hookspec
def hebbcore_register_backends() -> list[type]:
    """Return :class:`hebbcore.ops.Ops` subclasses (``--backend NAME``).

    A backend module must not import its framework at import time: import it in
    ``__init__`` and raise :class:`hebbcore.errors.BackendUnavailable` when missing.
    """


@hookspec
def hebbcore_register_datasets() -> list[type]:
    """Return :class:`hebbcore.interfaces.DataSource` subclasses (``[data] source = "..."``)."""


@hookspec
def hebbcore_register_transforms() -> list[type]:
    """Return :class:`hebbcore.interfaces.Transform` subclasses (``[[data.transforms]] name = "..."``)."""


@hookspec
def hebbcore_register_loggers() -> list[type]:
    """Return :class:`hebbcore.interfaces.Logger` subclasses (``hebbcore run --logger NAME``)."""


@hookspec
def hebbcore_register_commands() -> list[type]:
    """Return :class:`hebbcore.interfaces.Command` subclasses (``hebbcore NAME ...``)."""


@hookspec
def hebbcore_epoch_end(run_dir: str, record: dict[str, Any]) -> None:
    """Called after every epoch with the epoch's metrics record (loggers, dashboards).

    ``record`` holds ``phase`` ("hebbian" or "sgd"), ``epoch``, accuracies,
    ``seconds`` and ``images_per_s``. Return value ignored.
    """
