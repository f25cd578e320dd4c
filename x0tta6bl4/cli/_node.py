"""``x0tta6bl4 node``: this machine as a mesh node (joining with a purchased credential)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from x0tta6bl4 import loggers
from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.config import Settings
from x0tta6bl4.identity.credentials import load_public_key, public_key_path, verify_token
from x0tta6bl4.storefront.paths import join_key_path

__all__ = ["app", "credential_path"]

log = loggers.identity

app = typer.Typer(
    help="This machine as a mesh node: join with the credential the storefront delivered.",
    no_args_is_help=True,
)


def credential_path(settings: Settings) -> Path:
    """Where an accepted join token is kept (mode 0600)."""
    return settings.data_dir / "node" / "join_token"


@app.command()
def join(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The token the Telegram bot sent (x0j1....).")],
    issuer_key: Annotated[
        str | None,
        typer.Option(
            help="The seller's public key: 64 hex digits or a file "
            "(default: the storefront key on this machine)."
        ),
    ] = None,
) -> None:
    """Verify a join credential (signature, issuer, expiry) and keep it for this node."""
    settings = settings_of(ctx)
    key = load_public_key(issuer_key or public_key_path(join_key_path(settings)))
    cred = verify_token(token, key)
    path = credential_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token.strip() + "\n")
    log.info("node_joined", order=cred.order_id, plan=cred.plan, nodes=cred.nodes)
    table = Table(title="join credential accepted", show_header=False)
    table.add_row("plan", cred.plan)
    table.add_row("nodes", str(cred.nodes))
    table.add_row("order", cred.order_id)
    table.add_row("issued", cred.issued.isoformat())
    table.add_row("valid until", cred.expires.isoformat())
    table.add_row("issuer key", cred.kid)
    table.add_row("saved to", str(path))
    console.print(table)
