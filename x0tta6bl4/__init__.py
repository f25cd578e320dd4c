"""x0tta6bl4: a self-healing mesh network platform.

    import x0tta6bl4 as x0
    with x0.connect() as mesh:
        print(mesh.info)

Importing the package is cheap: Ray and torch load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from x0tta6bl4._version import __version__
from x0tta6bl4.config import Settings, load_settings
from x0tta6bl4.errors import X0Error

if TYPE_CHECKING:
    from x0tta6bl4.sdk import Mesh

__all__ = ["Settings", "X0Error", "__version__", "connect", "load_settings"]


def connect(address: str | None = None, **kwargs: Any) -> Mesh:
    """Start or attach to Ray and return a :class:`~x0tta6bl4.sdk.Mesh` handle.

    See :func:`x0tta6bl4.sdk.connect` for the arguments.
    """
    from x0tta6bl4.sdk import connect as _connect

    return _connect(address, **kwargs)
