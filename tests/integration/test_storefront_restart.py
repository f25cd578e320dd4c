"""A restart of the bot in the middle of a purchase loses nothing."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.telegram import FakeUser
from tests.integration._storefront_rig import ShopRig
from x0tta6bl4.payments import OrderState


async def test_restart_mid_purchase_and_while_the_payment_arrives(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(6100, language_code="en")
        catalog = await rig.open_catalog(buyer)
        await rig.tg.press(buyer, catalog, "plan:FAMILY")
        choice = await rig.tg.wait_message(buyer.id, "How do you want to pay?")

        # Restart between choosing the plan and the currency.
        await rig.stop_bot()
        await rig.start_bot()
        await rig.tg.press(buyer, choice, "pay:FAMILY:usdt_trc20")
        invoice = await rig.tg.wait_message(buyer.id, "Invoice x0")
        order_id = invoice.button("Check payment")["callback_data"].split(":")[1]

        # Restart with the invoice open: the persisted FSM still knows the order.
        await rig.stop_bot()
        await rig.start_bot()
        await rig.tg.send_text(buyer, "/start")
        reminder = await rig.tg.wait_message(buyer.id, "You have an unpaid invoice")
        assert order_id in reminder.text
        await rig.tg.press(buyer, reminder, f"inv:{order_id}")
        await rig.tg.wait_for(
            lambda: (
                sum(1 for m in rig.tg.chat(buyer.id) if order_id in m.body and m.edits == 0) >= 2
            ),
            what="the invoice shown again",
        )

        # Down while the buyer pays and presses "Check": both wait at Telegram.
        await rig.stop_bot()
        order = await rig.payments.get_order(order_id)
        rig.pay(order)
        press = await rig.tg.press(buyer, invoice, f"chk:{order_id}")
        assert rig.tg.pending_updates() >= 1
        await rig.start_bot()
        delivery = await rig.tg.wait_message(buyer.id, "node join", timeout_s=15)
        assert order_id in delivery.text
        await rig.tg.wait_for(lambda: press in rig.tg.callback_answers, what="queued press")
        assert (await rig.payments.get_order(order_id)).state is OrderState.PAID
        assert len([m for m in rig.tg.chat(buyer.id) if "node join" in m.body]) == 1
