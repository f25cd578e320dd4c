"""The products file: the shipped plans, and clear errors for every kind of mistake."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from x0tta6bl4.errors import ConfigError
from x0tta6bl4.storefront.catalog import load_catalog

PLAN = """
[[plan]]
id = "SOLO"
nodes = 1
duration_days = 30
price_usdt = "5.5"
price_ton = 2
name = { en = "Solo", ru = "Соло" }
description = { en = "One device.", ru = "Одно устройство." }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "products.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_catalog_has_the_four_plans_in_both_languages() -> None:
    catalog = load_catalog()
    assert [p.id for p in catalog] == ["SOLO", "FAMILY", "APARTMENT", "NEIGHBORHOOD"]
    for product in catalog:
        assert product.title("ru") != product.title("en")
        assert product.price("ton") == product.price_ton
        assert product.price("usdt_trc20") == product.price("usdt_ton") == product.price_usdt
    assert [p.nodes for p in catalog] == sorted(p.nodes for p in catalog)


def test_a_valid_file_parses_prices_exactly(tmp_path: Path) -> None:
    product = load_catalog(_write(tmp_path, PLAN)).get("SOLO")
    assert product is not None
    assert product.price_usdt == Decimal("5.5") and product.price_ton == Decimal("2")
    assert product.duration_s == 30 * 86400
    assert product.blurb("de") == "One device."


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('price_usdt = "5.5"', 'price_usdt = "-1"'), "above 0"),
        (lambda s: s.replace('price_usdt = "5.5"', 'price_usdt = "abc"'), "is not a number"),
        (lambda s: s.replace('"5.5"', '"5.1234567"'), "more than 6 decimal places"),
        (lambda s: s.replace("nodes = 1", "nodes = 0"), "nodes must be a whole number"),
        (lambda s: s.replace('id = "SOLO"', 'id = "solo plan"'), "id must be"),
        (lambda s: s.replace("duration_days = 30\n", ""), "lacks duration_days"),
        (lambda s: s + "colour = 1\n", "has unknown colour"),
        (lambda s: s.replace('ru = "Соло"', 'ru = ""'), "non-empty en and ru"),
        (lambda s: s + s, "lists plan SOLO more than once"),
        (lambda s: "[shop]\nname = 1\n", "has no [[plan]] tables"),
        (lambda s: s.replace("[[plan]]", "[[plan"), "not valid TOML"),
    ],
)
def test_mistakes_are_config_errors_naming_the_plan(
    tmp_path: Path, edit: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        load_catalog(_write(tmp_path, edit(PLAN)))  # type: ignore[operator]
    assert exc.value.fix


def test_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_catalog(tmp_path / "nope.toml")
