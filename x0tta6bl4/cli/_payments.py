"""``x0tta6bl4 payments``: list orders, check one against the chain, reconcile, invoice.

The commands open the payments database (``payments.db_path``) in-process.
While the app runs they share it with the Ledger actor; SQLite serialises the
writers and the ledger's unique (chain, tx id) key keeps every credit single.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.errors import ConfigError
from x0tta6bl4.payments import (
    Currency,
    Order,
    OrderState,
    PaymentRecord,
    PaymentService,
    display_address,
    format_amount,
    ledger_db_path,
    parse_amount,
    utcnow,
)

__all__ = ["app", "parse_since"]

app = typer.Typer(help="Orders and on-chain payment verification.", no_args_is_help=True)

T = TypeVar("T")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_STATE_STYLE = {
    "paid": "green",
    "pending": "yellow",
    "late": "magenta",
    "underpaid": "red",
    "expired": "dim",
    "cancelled": "dim",
}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``7d``, ``30m`` ago, or an ISO date/time (UTC when no zone is given)."""
    now = now or utcnow()
    if match := _DURATION.fullmatch(text.strip()):
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(
            f"--since {text!r} is neither a duration nor a date",
            fix="write it like 24h, 7d, 2026-01-31 or 2026-01-31T12:00",
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _with_service(ctx: typer.Context, work: Callable[[PaymentService], Awaitable[T]]) -> T:
    settings = settings_of(ctx)

    async def run() -> T:
        async with PaymentService(settings.payments, ledger_db_path(settings)) as service:
            return await work(service)

    return asyncio.run(run())


def _order_row(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer": order.customer,
        "product": order.product,
        "state": order.state.value,
        "amount": format_amount(order.amount, order.currency),
        "address": display_address(order),
        "comment": order.comment,
        "created_at": order.created_at.isoformat(),
        "expires_at": order.expires_at.isoformat(),
        "tx_id": order.tx_id,
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
    }


def _print_order(order: Order) -> None:
    style = _STATE_STYLE[order.state.value]
    console.print(f"order [bold]{order.id}[/] [{style}]{order.state.value}[/]")
    for key, value in _order_row(order).items():
        if key not in ("id", "state") and value is not None:
            console.print(f"  {key}: {value}")


@app.command("orders")
def orders(
    ctx: typer.Context,
    state: Annotated[
        list[OrderState] | None, typer.Option("--state", help="Only these states (repeatable).")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer's orders.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List orders, newest first."""

    async def fetch(service: PaymentService) -> list[Order]:
        if customer is not None:
            found = await service.orders_of(customer, limit)
            return [o for o in found if not state or o.state in state]
        return await service.orders(tuple(state or ()), limit)

    found = _with_service(ctx, fetch)
    if as_json:
        typer.echo(json.dumps([_order_row(o) for o in found], indent=2))
        return
    table = Table(title=f"orders ({len(found)})")
    for column in ("id", "state", "amount", "customer", "product", "created", "tx"):
        table.add_column(column)
    for order in found:
        style = _STATE_STYLE[order.state.value]
        table.add_row(
            order.id,
            f"[{style}]{order.state.value}[/]",
            format_amount(order.amount, order.currency),
            order.customer,
            order.product,
            f"{order.created_at:%Y-%m-%d %H:%M}",
            (order.tx_id or "")[:16],
        )
    console.print(table)


@app.command("check")
def check(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The order id (its TON comment).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Poll the chain for ORDER now and show its state."""
    with console.status(f"checking {order_id} on-chain"):
        order = _with_service(ctx, lambda service: service.check(order_id))
    if as_json:
        typer.echo(json.dumps(_order_row(order), indent=2))
    else:
        _print_order(order)


@app.command("invoice")
def invoice(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Who pays, e.g. tg:12345.")],
    product: Annotated[str, typer.Argument(help="What is sold.")],
    currency: Annotated[Currency, typer.Argument(help="usdt_trc20, ton or usdt_ton.")],
    price: Annotated[str, typer.Argument(help="Price in whole coins, e.g. 12.5.")],
) -> None:
    """Open an order and print what the buyer must send (URI and wallet links)."""
    units = parse_amount(price, currency)

    async def create(service: PaymentService) -> tuple[Order, str, dict[str, str]]:
        order = await service.create_order(customer, product, currency, units)
        return order, service.payment_uri(order), service.wallet_links(order)

    order, uri, links = _with_service(ctx, create)
    _print_order(order)
    console.print(f"  pay: {uri}", soft_wrap=True)
    for wallet, link in links.items():
        console.print(f"  {wallet}: {link}", soft_wrap=True)


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="From when: 24h, 7d or a date.")] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-scan every receiving address and list payments that credit no order."""
    start = parse_since(since)
    with console.status("re-scanning the chains"):
        records = _with_service(ctx, lambda service: service.reconcile(start))
    if as_json:
        typer.echo(json.dumps([_payment_row(r) for r in records], indent=2))
        return
    table = Table(title=f"payments not credited since {start:%Y-%m-%d %H:%M} UTC")
    for column in ("time", "status", "amount", "tx", "order", "detail"):
        table.add_column(column)
    for record in records:
        row = _payment_row(record)
        table.add_row(
            row["at"][:19],
            row["status"],
            row["amount"],
            row["tx_id"][:16],
            row["order"] or "",
            row["detail"],
        )
    console.print(table)
    if not records:
        console.print("every payment since then credits an order")


def _payment_row(record: PaymentRecord) -> dict[str, Any]:
    amount = (
        format_amount(record.amount, record.currency) if record.currency else str(record.amount)
    )
    return {
        "at": record.at.isoformat(),
        "chain": record.chain.value,
        "status": record.status.value,
        "amount": amount,
        "tx_id": record.tx_id,
        "from": record.from_address,
        "order": record.order_id,
        "detail": record.detail,
    }


@app.command("stats")
def stats(ctx: typer.Context) -> None:
    """Orders per state, revenue per currency, payment outcomes (JSON)."""
    typer.echo(json.dumps(_with_service(ctx, lambda service: service.stats()), indent=2))
