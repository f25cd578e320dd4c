"""Texts: both languages complete and in step, escaping, language choice, durations."""

from __future__ import annotations

import pytest

from x0tta6bl4.storefront.texts import TEXTS, duration_text, lang_of, placeholders, t


def test_every_language_has_every_text_with_the_same_placeholders() -> None:
    en, ru = TEXTS["en"], TEXTS["ru"]
    assert set(en) == set(ru)
    for key in en:
        assert placeholders(en[key]) == placeholders(ru[key]), key
        assert en[key].count("<") == ru[key].count("<"), key


@pytest.mark.parametrize(
    ("code", "lang"),
    [("ru", "ru"), ("ru-RU", "ru"), ("RU", "ru"), ("en-GB", "en"), ("de", "en"), (None, "en")],
)
def test_language_follows_telegram_language_code(code: str | None, lang: str) -> None:
    assert lang_of(code) == lang


def test_substituted_values_are_escaped() -> None:
    text = t("en", "plan_line", name="<b>x</b>", nodes=1, days=2, description="a&b", usdt=1, ton=2)
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "a&amp;b" in text
    assert text.startswith("<b>")


@pytest.mark.parametrize(
    ("seconds", "en", "ru"),
    [(0, "0 min", "0 мин"), (59, "1 min", "1 мин"), (900, "15 min", "15 мин"),
     (3600 * 2 + 61, "2 h 2 min", "2 ч 2 мин"), (-5, "0 min", "0 мин")],
)  # fmt: skip
def test_durations_round_up_to_the_minute(seconds: float, en: str, ru: str) -> None:
    assert duration_text("en", seconds) == en
    assert duration_text("ru", seconds) == ru
