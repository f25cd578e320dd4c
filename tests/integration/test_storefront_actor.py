"""The Storefront Ray actor under the app, next to the Ledger and verifier actors."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from tests.fakes import FakeToncenter, FakeTronGrid, payments_settings
from tests.fakes.telegram import BOT_TOKEN, FakeUser, ThreadedFakeTelegram
from tests.helpers import wait_for
from x0tta6bl4.actors.app import App
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.actors.storefront import STOREFRONT_NAME
from x0tta6bl4.config import RaySettings, Settings, StorefrontSettings
from x0tta6bl4.errors import ClusterError
from x0tta6bl4.payments import Currency, parse_amount
from x0tta6bl4.sdk import Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_storefront_actor_sells_through_the_ledger_actor(
    ray_session: RayInfo, tmp_path: Path
) -> None:
    with ThreadedFakeTelegram() as telegram, FakeTronGrid() as tron, FakeToncenter() as ton:
        tg = telegram.fake
        settings = Settings(
            data_dir=tmp_path,
            ray=RaySettings(namespace=ray_session.namespace, dashboard=False),
            metrics={"enabled": False},
            ebpf={"enabled": False},
            ml={"enabled": False},
            mesh={"enabled": False},
            supervisor={"enabled": False},
            payments=payments_settings(tron, ton, verifiers=1),
            storefront=StorefrontSettings(
                enabled=True, bot_token=BOT_TOKEN, api_base_url=tg.base_url, polling_timeout_s=1
            ),
        )
        app = App(settings)
        app.start()
        try:
            states = {s.name: s for s in app.status()}
            assert states["storefront"].state == "running", states["storefront"].error
            assert states["storefront"].detail["ledger"] == "payments-ledger"
            assert states["storefront"].detail["bot"] == "x0_test_bot"
            sdk_view = Mesh(settings, ray_session).storefront()
            assert sdk_view["mode"] == "polling" and sdk_view["ledger"] == "payments-ledger"

            buyer = FakeUser(1234)
            telegram.call(tg.send_text(buyer, "/start"))
            catalog = wait_for(lambda: tg.chat(buyer.id), 30, message="the catalog")[0]
            telegram.call(tg.press(buyer, catalog, "plan:SOLO"))
            wait_for(lambda: "pay:" in str(catalog.reply_markup), 30, message="currencies")
            telegram.call(tg.press(buyer, catalog, "pay:SOLO:usdt_trc20"))
            invoice = wait_for(
                lambda: next((m for m in tg.chat(buyer.id) if "chk:" in str(m.reply_markup)), None),
                30,
                message="the invoice",
            )
            amount, address = (
                part.split("</code>")[0] for part in invoice.text.split("<code>")[1:3]
            )
            tron.add_transfer(address, parse_amount(amount, Currency.USDT_TRC20))
            wait_for(
                lambda: any("node join" in m.body for m in tg.chat(buyer.id)),
                30,
                message="the delivered credential",
            )
        finally:
            app.stop()
        with pytest.raises(ValueError):
            ray.get_actor(STOREFRONT_NAME, namespace=ray_session.namespace)
        with pytest.raises(ClusterError, match="no Storefront actor"):
            Mesh(settings, ray_session).storefront()
