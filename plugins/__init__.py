"""hebbcore's built-in plugins (import name ``hebbcore_plugins``).

- ``rules/``: learning rules (``hebb``, ``decay``, ``wta``, ``teacher``).
- ``aggregations.py``: how shared-kernel updates are combined.
- ``data/``: data sources and preprocessing transforms.

They register through the ``hebbcore`` entry-point group, exactly as a
third-party plugin would.
"""
