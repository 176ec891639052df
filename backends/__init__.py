"""Array backends of hebbcore (import name ``hebbcore_backends``).

Each module defines one :class:`hebbcore.ops.Ops` subclass; none imports its
framework (torch, cupy) until that backend is constructed.
"""
