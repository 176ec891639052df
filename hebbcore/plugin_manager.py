"""The plugin manager factory and the registry of everything plugins provide."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import PROJECT, hookspecs
from .errors import PluginError
from .interfaces import Aggregation, Command, DataSource, LearningRule, Logger, Transform
from .layers import Layer
from .ops import Ops


def make_plugin_manager(plugins: Iterable[Any] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh plugin manager with every hook spec, the ``hebbcore`` entry points and ``plugins``.

    Raises :class:`PluginError` when a plugin implements a hook that does not
    exist (a misspelling) or cannot be loaded.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(PROJECT)
        except Exception as exc:  # a third-party plugin that fails to import
            raise PluginError(
                f"the 'hebbcore' entry-point plugin {_failing_entry_point()} failed to load: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
    for plugin in plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    return pm


def _failing_entry_point() -> str:
    """``'name' (module:object, from distribution)`` of the first ``hebbcore`` entry point that fails to load."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=PROJECT):
        try:
            ep.load()
        except Exception:  # the one pluggy tripped on (any error an import can raise)
            dist = getattr(ep.dist, "name", None)
            return f"{ep.name!r} ({ep.value}{f', from {dist}' if dist else ''})"
    return "(unknown)"


_KINDS = {
    "rule": ("hebbcore_register_rules", LearningRule),
    "aggregation": ("hebbcore_register_aggregations", Aggregation),
    "layer": ("hebbcore_register_layers", Layer),
    "backend": ("hebbcore_register_backends", Ops),
    "dataset": ("hebbcore_register_datasets", DataSource),
    "transform": ("hebbcore_register_transforms", Transform),
    "logger": ("hebbcore_register_loggers", Logger),
    "command": ("hebbcore_register_commands", Command),
}


@dataclass
class Registry:
    """Name -> class for each kind of plugin, built from one plugin manager."""

    pm: pluggy.PluginManager
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> plugin class, per kind
    origin: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> Registry:
        reg = cls(pm)
        for kind, (hook_name, base) in _KINDS.items():
            table: dict[str, type] = {}
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
                result = impl.function()
                for klass in result or []:
                    if not (isinstance(klass, type) and issubclass(klass, base)):
                        raise PluginError(
                            f"plugin {plugin_name!r}: {hook_name} returned {klass!r}, "
                            f"expected a subclass of {base.__name__}"
                        )
                    name = getattr(klass, "name", None)
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"plugin {plugin_name!r}: {klass.__name__} has no 'name'")
                    if name in table:
                        raise PluginError(
                            f"{kind} {name!r} is registered twice: by "
                            f"{reg.origin[(kind, name)]!r} and by {plugin_name!r}"
                        )
                    table[name] = klass
                    reg.origin[(kind, name)] = plugin_name
            reg.tables[kind] = table
        return reg

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables[kind])

    def get(self, kind: str, name: str) -> Any:
        """The class registered as ``name``; :class:`PluginError` with a did-you-mean otherwise."""
        table = self.tables[kind]
        if name not in table:
            raise PluginError(
                f"unknown {kind} {name!r}{did_you_mean(name, table)}; known: {', '.join(sorted(table)) or '(none)'}"
            )
        return table[name]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` when a close match exists, else ``""``."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def default_registry(plugins: Iterable[Any] = ()) -> Registry:
    """Registry of the installed plugins plus ``plugins``."""
    return Registry.from_plugin_manager(make_plugin_manager(plugins))
