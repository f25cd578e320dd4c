"""The "Check payment" button under pressure, and invoices that expire or are paid wrong."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.telegram import FakeUser
from tests.integration._storefront_rig import ADMIN, ShopRig
from x0tta6bl4.payments import OrderState


async def test_check_pressed_many_times_polls_the_chain_once_per_cooldown(
    tmp_path: Path,
) -> None:
    async with ShopRig(tmp_path, {"check_cooldown_s": 30.0, "user_burst": 100}) as rig:
        await rig.start_bot()
        buyer = FakeUser(3100)
        invoice, order = await rig.buy(buyer)
        polls_before = rig.tron.count("/v1/accounts/")
        presses = [await rig.tg.press(buyer, invoice, f"chk:{order.id}") for _ in range(12)]
        answers = await rig.tg.wait_for(
            lambda: (
                [rig.tg.callback_answers[q]["text"] for q in presses]
                if all(q in rig.tg.callback_answers for q in presses)
                else None
            ),
            what="every press answered",
        )
        assert sum("No payment seen yet" in a for a in answers) == 1
        assert sum("try again in" in a for a in answers) == 11
        # Exactly one button-driven chain poll; the verifier's own polls come on top.
        assert rig.bot is not None and rig.bot.status()["checks"] == 1
        assert rig.bot.status()["checks_throttled"] == 11
        assert rig.tron.count("/v1/accounts/") >= polls_before + 1

        rig.pay(order)
        await rig.tg.wait_message(buyer.id, "node join", timeout_s=15)
        late_presses = [await rig.tg.press(buyer, invoice, f"chk:{order.id}") for _ in range(3)]
        await rig.tg.wait_for(
            lambda: all(q in rig.tg.callback_answers for q in late_presses), what="answers"
        )
        assert len([m for m in rig.tg.chat(buyer.id) if "node join" in m.body]) == 1


async def test_unpaid_invoice_expires_and_a_late_payment_reaches_the_owner(
    tmp_path: Path,
) -> None:
    async with ShopRig(tmp_path, {"check_cooldown_s": 0.0}, {"expiry_min": 0.03}) as rig:
        await rig.start_bot()
        buyer = FakeUser(3200)
        invoice, order = await rig.buy(buyer, "SOLO")
        qr = await rig.tg.wait_message(buyer.id, "Scan to pay", photo=True)
        await rig.tg.wait_message(buyer.id, "expired unpaid", timeout_s=15)
        assert "Expired" in invoice.text and invoice.reply_markup is None
        assert qr.deleted
        assert (await rig.payments.get_order(order.id)).state is OrderState.EXPIRED

        press = await rig.tg.press(buyer, invoice, f"chk:{order.id}")
        await rig.tg.wait_for(lambda: press in rig.tg.callback_answers, what="answer")
        assert "already expired" in rig.tg.callback_answers[press]["text"]

        rig.pay(order)
        await rig.tg.wait_message(buyer.id, "arrived after the invoice expired", timeout_s=15)
        await rig.tg.wait_message(ADMIN, f"late payment on order {order.id}")
        assert not [m for m in rig.tg.chat(buyer.id) if "node join" in m.body]

        # The owner looks into it and delivers by hand.
        admin = FakeUser(ADMIN, "Owner")
        await rig.tg.send_text(admin, "/deliver x0nosuchone")
        await rig.tg.wait_message(ADMIN, "There is no order x0nosuchone")
        await rig.tg.send_text(admin, f"/deliver {order.id}")
        await rig.tg.wait_message(ADMIN, f"{order.id}: delivered.")
        await rig.tg.wait_message(buyer.id, "node join")


async def test_underpaid_ton_invoice_is_flagged_to_buyer_and_owner(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(3300)
        _invoice, order = await rig.buy(buyer, "FAMILY", "ton")
        rig.pay(order, amount=order.amount // 2)
        await rig.tg.wait_message(buyer.id, "less than the invoice amount", timeout_s=15)
        await rig.tg.wait_message(ADMIN, f"underpaid payment on order {order.id}")
        assert not [m for m in rig.tg.chat(buyer.id) if "node join" in m.body]
