"""The plans on sale, read from a TOML products file and validated once."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from x0tta6bl4.errors import ConfigError

__all__ = ["LANGUAGES", "Catalog", "Product", "default_products_file", "load_catalog"]

LANGUAGES = ("en", "ru")
"""Languages every name and description must be given in."""

_ID = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_PRICE_KEYS = {"usdt": "price_usdt", "ton": "price_ton"}
_KEYS = {"id", "nodes", "duration_days", "name", "description", *_PRICE_KEYS.values()}


@dataclass(frozen=True)
class Product:
    """One plan: how many nodes, for how long, at what price per currency family."""

    id: str
    nodes: int
    duration_days: int
    price_usdt: Decimal
    price_ton: Decimal
    name: dict[str, str]
    description: dict[str, str]

    def price(self, currency: str) -> Decimal:
        """Price in ``currency`` (``usdt_trc20``, ``usdt_ton`` or ``ton``)."""
        return self.price_ton if currency == "ton" else self.price_usdt

    def title(self, lang: str) -> str:
        return self.name.get(lang) or self.name["en"]

    def blurb(self, lang: str) -> str:
        return self.description.get(lang) or self.description["en"]

    @property
    def duration_s(self) -> int:
        return self.duration_days * 86400


@dataclass(frozen=True)
class Catalog:
    """The plans in file order, looked up by id."""

    products: tuple[Product, ...]
    source: str

    def get(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    def __iter__(self) -> Any:
        return iter(self.products)

    def __len__(self) -> int:
        return len(self.products)


def default_products_file() -> Path:
    """The catalog shipped with the package."""
    return Path(str(resources.files("x0tta6bl4.storefront") / "products.toml"))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate a products file; blocking (call it off the event loop).

    Raises:
        ConfigError: the file is missing, not TOML, or a plan is incomplete or
            inconsistent; the message names the plan and the field.
    """
    path = path or default_products_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"products file {path} cannot be read: {exc.strerror}",
            fix="set storefront.products_file to an existing TOML file",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"products file {path} is not valid TOML: {exc}", fix="fix its syntax"
        ) from exc
    plans = data.get("plan")
    if not isinstance(plans, list) or not plans:
        raise ConfigError(
            f"products file {path} has no [[plan]] tables",
            fix="add at least one [[plan]] (see the shipped products.toml)",
        )
    products = tuple(_product(path, i, raw) for i, raw in enumerate(plans))
    ids = [p.id for p in products]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(
            f"products file {path} lists plan {', '.join(duplicates)} more than once",
            fix="give every [[plan]] its own id",
        )
    return Catalog(products, str(path))


def _product(path: Path, index: int, raw: Any) -> Product:
    where = f"plan #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"plan {raw['id']}"

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"products file {path}: {where} {why}", fix="correct that plan in the products file"
        )

    if not isinstance(raw, dict):
        raise bad("is not a table")
    unknown = sorted(set(raw) - _KEYS)
    missing = sorted(_KEYS - set(raw))
    if unknown or missing:
        detail = [f"lacks {', '.join(missing)}" if missing else ""]
        detail.append(f"has unknown {', '.join(unknown)}" if unknown else "")
        raise bad(" and ".join(d for d in detail if d))
    if not isinstance(raw["id"], str) or not _ID.match(raw["id"]):
        raise bad("id must be 1-32 upper-case letters, digits or _ starting with a letter")
    for key in ("nodes", "duration_days"):
        value = raw[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
            raise bad(f"{key} must be a whole number from 1 to 100000")
    texts = {key: _texts(raw[key], bad, key) for key in ("name", "description")}
    prices = {key: _price(raw[key], bad, key) for key in _PRICE_KEYS.values()}
    return Product(
        id=raw["id"],
        nodes=raw["nodes"],
        duration_days=raw["duration_days"],
        price_usdt=prices["price_usdt"],
        price_ton=prices["price_ton"],
        name=texts["name"],
        description=texts["description"],
    )


def _texts(value: Any, bad: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or any(
        not isinstance(value.get(lang), str) or not value[lang].strip() for lang in LANGUAGES
    ):
        raise bad(f"{key} must be a table with non-empty {' and '.join(LANGUAGES)} texts")
    if any(len(text) > 300 for text in value.values()):
        raise bad(f"{key} texts must be at most 300 characters")
    return {lang: value[lang].strip() for lang in LANGUAGES}


def _price(value: Any, bad: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(f'{key} must be a decimal string such as "9.99"')
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise bad(f"{key} {value!r} is not a number") from None
    if not price.is_finite() or price <= 0 or price > 1_000_000:
        raise bad(f"{key} must be above 0 and at most 1000000")
    if -price.as_tuple().exponent > 6:  # type: ignore[operator]
        raise bad(f"{key} has more than 6 decimal places")
    return price
