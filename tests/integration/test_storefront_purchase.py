# Russian texts are Cyrillic on purpose.
# ruff: noqa: RUF001
"""The whole purchase over real HTTP: /start, plan, currency, invoice, payment, delivery."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.telegram import FakeUser
from tests.integration._storefront_rig import ADMIN, ShopRig
from x0tta6bl4.identity.credentials import load_public_key, public_key_path, verify_token
from x0tta6bl4.payments import OrderState, format_amount
from x0tta6bl4.storefront import join_key_path


async def test_purchase_from_start_to_delivered_credential(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(4242, language_code="en")
        invoice, order = await rig.buy(buyer, "FAMILY", "usdt_trc20")

        # The invoice: exact amount, address, countdown, QR photo, check button.
        exact = format_amount(order.amount, order.currency).split()[0]
        assert f"<code>{exact}</code>" in invoice.text
        assert order.address in invoice.text
        assert "15 min left" in invoice.text
        qr = await rig.tg.wait_message(buyer.id, "Scan to pay", photo=True)
        assert qr.photo is not None and qr.photo.startswith(b"\x89PNG")
        zxingcpp = pytest.importorskip("zxingcpp")
        decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.photo)).convert("L"))
        assert [code.text for code in decoded] == [rig.payments.payment_uri(order)]
        assert invoice.button("Check payment")["callback_data"] == f"chk:{order.id}"
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


async def test_russian_buyer_pays_in_ton_with_comment_and_wallet_links(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(5151, language_code="ru")
        catalog = await rig.open_catalog(buyer)
        assert "самовосстанавливающаяся" in catalog.text
        invoice, order = await rig.buy(buyer, "SOLO", "ton")
        assert order.comment and f"<code>{order.comment}</code>" in invoice.text
        assert "Отправьте ровно" in invoice.text
        links = {b["text"]: b.get("url", "") for b in invoice.buttons()}
        tonkeeper = links["Открыть в Tonkeeper"]
        assert tonkeeper.startswith("https://app.tonkeeper.com/transfer/")
        assert f"amount={order.amount}" in tonkeeper and f"text={order.comment}" in tonkeeper
        assert "Tonhub" in " ".join(links)

        rig.pay(order)
        delivery = await rig.tg.wait_message(buyer.id, "На каждом узле", timeout_s=15)
        assert "Оплата заказа" in delivery.text and "Соло" in delivery.text


async def test_two_buyers_of_the_same_plan_at_once_get_their_own_orders(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        alice, bob = FakeUser(7001, "Alice"), FakeUser(7002, "Bob")
        (inv_a, order_a), (inv_b, order_b) = await asyncio.gather(
            rig.buy(alice, "APARTMENT"), rig.buy(bob, "APARTMENT")
        )
        assert order_a.id != order_b.id
        assert order_a.amount != order_b.amount  # TRC20 has no memo: amounts must differ
        assert inv_a.chat_id == alice.id and inv_b.chat_id == bob.id
        rig.pay(order_b)
        rig.pay(order_a)
        got_a = await rig.tg.wait_message(alice.id, "node join", timeout_s=15)
        got_b = await rig.tg.wait_message(bob.id, "node join", timeout_s=15)
        assert order_a.id in got_a.text and order_b.id not in got_a.text
        assert order_b.id in got_b.text and order_a.id not in got_b.text
        for user in (alice, bob):
            deliveries = [m for m in rig.tg.chat(user.id) if "node join" in m.body]
            assert len(deliveries) == 1
