"""``x0tta6bl4 bot``: run the Telegram storefront in this process, without Ray."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.config import Settings
from x0tta6bl4.identity.credentials import load_or_create_issuer_key, public_key_hex
from x0tta6bl4.storefront.paths import join_key_path

if TYPE_CHECKING:
    from x0tta6bl4.storefront.service import Storefront

__all__ = ["bot"]


def bot(
    ctx: typer.Context,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    show_key: Annotated[
        bool,
        typer.Option(
            "--show-key",
            help="Print the public key that verifies join credentials (for `node join "
            "--issuer-key`) and exit.",
        ),
    ] = False,
) -> None:
    """Run the Telegram storefront in this process, without Ray.

    Long polling (or the webhook when storefront.webhook_url is set), with payment
    verification in the same process.  Needs storefront.bot_token and a receiving address.
    """
    settings = settings_of(ctx)
    if show_key:
        typer.echo(public_key_hex(load_or_create_issuer_key(join_key_path(settings))))
        return
    asyncio.run(_serve(settings, duration))


async def _serve(settings: Settings, duration: float | None) -> None:
    from x0tta6bl4.storefront.service import serve  # aiogram loads only for this command

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)

    def ready(storefront: Storefront) -> None:
        console.print(
            f"storefront [bold]@{storefront.username}[/] is up ({storefront.mode}); "
            f"offering {', '.join(storefront.currencies)}; Ctrl-C stops it"
        )

    try:
        await serve(settings, stop, on_ready=ready)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("storefront stopped")
