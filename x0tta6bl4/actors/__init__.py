"""Thin Ray wrappers around the library: one module per actor kind.

The library packages (``x0tta6bl4.mesh``, ``.payments``, ...) never import Ray;
only this package, the SDK and the CLI do.
"""
