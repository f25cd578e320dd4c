"""Commands and input checks: /orders, /help, /support, owner-only /stats, forged buttons."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.telegram import FakeUser
from tests.integration._storefront_rig import ADMIN, ShopRig
from x0tta6bl4.payments import format_amount


async def test_admin_stats_count_orders_revenue_and_problems(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyers = [FakeUser(8000 + i) for i in range(3)]
        orders = [(await rig.buy(b, "SOLO"))[1] for b in buyers]
        rig.pay(orders[0])
        await rig.tg.wait_message(buyers[0].id, "node join", timeout_s=15)
        owner = FakeUser(ADMIN, "Owner", language_code="ru")
        await rig.tg.send_text(owner, "/stats")
        stats = await rig.tg.wait_message(ADMIN, "Магазин")
        assert "Заказов: 3" in stats.text
        assert "ожидает оплаты: 2" in stats.text and "оплачен: 1" in stats.text
        revenue = format_amount(orders[0].amount, orders[0].currency).split()[0]
        assert f"Выручка: {revenue} USDT (TRC-20)" in stats.text
        assert "Покупателей: 3" in stats.text and "выдано токенов: 1" in stats.text


async def test_non_admin_cannot_use_owner_commands(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        intruder = FakeUser(8100)
        _invoice, order = await rig.buy(intruder, "SOLO")
        for command in ("/stats", f"/deliver {order.id}"):
            await rig.tg.send_text(intruder, command)
        await rig.tg.wait_for(
            lambda: len([m for m in rig.tg.chat(intruder.id) if "shop owner" in m.body]) == 2,
            what="two refusals",
        )
        assert not [m for m in rig.tg.chat(intruder.id) if "Orders:" in m.body]
        assert not [m for m in rig.tg.chat(intruder.id) if "node join" in m.body]
        assert not rig.tg.chat(ADMIN)


async def test_orders_help_support_and_unknown_input(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(8200)
        await rig.tg.send_text(buyer, "/orders")
        await rig.tg.wait_message(buyer.id, "no orders yet")
        _invoice, order = await rig.buy(buyer, "NEIGHBORHOOD")
        rig.pay(order)
        await rig.tg.wait_message(buyer.id, "node join", timeout_s=15)
        await rig.tg.send_text(buyer, "/orders")
        listing = await rig.tg.wait_message(buyer.id, "Your orders")
        assert f"{order.id} · Neighborhood" in listing.text and "paid" in listing.text
        await rig.tg.press(buyer, listing, listing.button(order.id)["callback_data"])
        await rig.tg.wait_for(
            lambda: len([m for m in rig.tg.chat(buyer.id) if "node join" in m.body]) == 2,
            what="the token sent again",
        )
        tokens = {m.body.split("<code>")[1] for m in rig.tg.chat(buyer.id) if "node join" in m.body}
        assert len(tokens) == 1  # the same token every time

        await rig.tg.send_text(buyer, "/help")
        await rig.tg.wait_message(buyer.id, "/orders: your orders")
        await rig.tg.send_text(buyer, "/support")
        await rig.tg.wait_message(buyer.id, "Write to @x0_support")
        await rig.tg.send_text(buyer, "<b>hello</b> " + "x" * 3000)
        await rig.tg.wait_message(buyer.id, "I did not understand that")


async def test_forged_and_stale_buttons_are_refused(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        owner_of_order, other = FakeUser(8300), FakeUser(8301)
        invoice, order = await rig.buy(owner_of_order, "SOLO")
        forged = {
            f"chk:{order.id}": "not one of your orders",
            f"inv:{order.id}": "not one of your orders",
            f"tok:{order.id}": "not one of your orders",
            "chk:../../etc": "not one of your orders",
            "plan:NOPE": "out of date",
            "pay:SOLO:btc": "out of date",
            "pay:NOPE:ton": "out of date",
            "zzz": "out of date",
            "menu:explode": "out of date",
        }
        presses = {await rig.tg.press(other, invoice, data): want for data, want in forged.items()}
        await rig.tg.wait_for(
            lambda: all(q in rig.tg.callback_answers for q in presses), what="all answered"
        )
        for query, want in presses.items():
            assert want in rig.tg.callback_answers[query]["text"]
        assert len(await rig.payments.orders_of(f"tg:{other.id}")) == 0
