"""The whole purchase over real HTTP: /start, plan, currency, invoice, payment, delivery."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.telegram import FakeUser
from tests.integration._storefront_rig import ADMIN, ShopRig
from x0tta6bl4.identity.credentials import load_public_key, public_key_path, verify_token
from x0tta6bl4.payments import OrderState
from x0tta6bl4.storefront import join_key_path


async def test_purchase_from_start_to_delivered_credential(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(4242, language_code="en")
        invoice, order = await rig.buy(buyer, "FAMILY", "usdt_trc20")

        # The invoice: exact amount, address, countdown, QR photo, check button.
        amount = str(order.amount / 10**6)
        assert order.address in invoice.text
        assert f"{order.amount // 10**6}." in invoice.text
        assert "left" in invoice.text
        qr = await rig.tg.wait_message(buyer.id, "Scan to pay", photo=True)
        assert qr.photo is not None and qr.photo.startswith(b"\x89PNG")
        assert invoice.button("Check payment")["callback_data"] == f"chk:{order.id}"
        assert amount  # the amount is shown with all its unique digits below
        assert order.amount > 15 * 10**6  # price plus the unique offset

        rig.pay(order)
        delivery = await rig.tg.wait_message(buyer.id, "x0tta6bl4 node join", timeout_s=15)
        token = delivery.text.split("<code>")[1].split("</code>")[0]
        issuer = load_public_key(public_key_path(join_key_path(rig.settings)))
        cred = verify_token(token, issuer)
        assert (cred.plan, cred.nodes, cred.order_id) == ("FAMILY", 5, order.id)
        assert cred.expires_at - cred.issued_at == 30 * 86400

        # The invoice turned into a receipt, its QR is gone, the owner heard of the sale.
        assert "Paid" in invoice.text and invoice.reply_markup is None
        assert qr.deleted
        await rig.tg.wait_message(ADMIN, f"order {order.id}")
        assert (await rig.payments.get_order(order.id)).state is OrderState.PAID
