"""Where the storefront keeps its files (light: no aiogram import, for the CLI)."""

from __future__ import annotations

from pathlib import Path

from x0tta6bl4.config import Settings

__all__ = ["join_key_path", "state_db_path"]


def state_db_path(settings: Settings) -> Path:
    """The bot's SQLite file: FSM, invoices, users, handled updates."""
    return settings.storefront.state_db or settings.data_dir / "storefront" / "bot.sqlite3"


def join_key_path(settings: Settings) -> Path:
    """The Ed25519 key that signs join credentials (its ``.pub`` lies next to it)."""
    return settings.storefront.join_key_file or settings.data_dir / "storefront" / "join_key.pem"
