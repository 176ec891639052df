"""hebbcore's built-in plugins (import name ``hebbcore_plugins``).

- ``rules/``: learning rules (``hebbcore plugins`` lists them; the README's table describes each).
- ``aggregations.py``: how shared-kernel updates are combined.
- ``data/``: data sources and preprocessing transforms.
- ``loggers/``: epoch loggers chosen with ``hebbcore run --logger``.

They register through the ``hebbcore`` entry-point group, exactly as a
third-party plugin would.
"""
