"""The Telegram storefront: sells mesh access for crypto and delivers it at once.

    from x0tta6bl4.storefront import Storefront, serve

    storefront = Storefront(settings, payment_service)
    await storefront.start()        # long polling (or a webhook), background tasks
    ...
    await storefront.stop()

Library code: no Ray here; ``x0tta6bl4.actors.storefront`` wraps :func:`serve`.
Importing this package is cheap: aiogram loads when ``Storefront`` or
``serve`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from x0tta6bl4.storefront.catalog import Catalog, Product, default_products_file, load_catalog
from x0tta6bl4.storefront.paths import join_key_path, state_db_path

if TYPE_CHECKING:
    from x0tta6bl4.storefront.service import Storefront, serve

__all__ = [
    "Catalog",
    "Product",
    "Storefront",
    "default_products_file",
    "join_key_path",
    "load_catalog",
    "serve",
    "state_db_path",
]


def __getattr__(name: str) -> Any:
    if name in ("Storefront", "serve"):
        from x0tta6bl4.storefront import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
