"""The ``payments`` component of the app: one Ledger actor and ``payments.verifiers`` pollers.

Enabled by ``payments.enabled``.  Without a receiving address nothing could
be verified, so ``start`` raises a ConfigError that says which setting to add.
"""

from __future__ import annotations

from typing import Any, cast

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.ledger import spawn_ledger
from x0tta6bl4.actors.payment_verifier import spawn_verifier
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, ConfigError
from x0tta6bl4.payments import ledger_db_path, resolve

__all__ = ["PaymentsComponent"]

log = loggers.payments

_STOP_TIMEOUT_S = 30.0
_START_TIMEOUT_S = 120.0


class PaymentsComponent:
    """Starts the Ledger actor, then the verifiers; stops them in reverse."""

    name = "payments"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ledger: ActorHandle[Any] | None = None
        self.verifiers: list[ActorHandle[Any]] = []

    def start(self, ray_info: RayInfo) -> None:
        payments = self.settings.payments
        if not resolve(payments).currencies():
            raise ConfigError(
                "payments are enabled but no receiving address is configured",
                fix="set payments.tron_addresses and/or payments.ton_addresses",
            )
        self.ledger = spawn_ledger(payments, str(ledger_db_path(self.settings)), ray_info.namespace)
        self.verifiers = [
            spawn_verifier(payments, i, ray_info.namespace) for i in range(payments.verifiers)
        ]
        try:
            ray.get([v.status.remote() for v in self.verifiers], timeout=_START_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            self.stop()
            raise ClusterError(
                f"the PaymentVerifier actors did not start: {exc}",
                fix="see their logs in the Ray dashboard; check free memory (~90 MB each)",
            ) from exc
        log.info("payments_started", verifiers=len(self.verifiers))

    def status(self) -> dict[str, Any]:
        if self.ledger is None:
            return {}
        try:
            stats = cast(dict[str, Any], ray.get(self.ledger.call.remote("stats"), timeout=10))
            refs = [v.status.remote() for v in self.verifiers]
            reports: list[dict[str, Any]] = ray.get(refs, timeout=10)
        except ray.exceptions.RayError as exc:
            raise ClusterError(
                f"payments actors did not answer: {exc}",
                fix="they restart by themselves; see the Ray dashboard",
            ) from exc
        orders = stats["orders"]
        return {
            "pending": orders["pending"],
            "paid": orders["paid"],
            "late": orders["late"],
            "verifiers": sum(1 for r in reports if r["running"]),
            "polls": sum(r["polls"] for r in reports),
            "poll_errors": sum(r["errors"] for r in reports),
        }

    def stop(self) -> None:
        """Stop and remove the verifiers, then the ledger; idempotent."""
        while self.verifiers:
            _end(self.verifiers.pop(), "stop")
        if self.ledger is not None:
            ledger, self.ledger = self.ledger, None
            _end(ledger, "close")


def _end(actor: ActorHandle[Any], method: str) -> None:
    """Ask ``actor`` to wind down (``method``), then remove it whatever happened."""
    try:
        ray.get(getattr(actor, method).remote(), timeout=_STOP_TIMEOUT_S)
    except ray.exceptions.RayError as exc:
        log.error("payments_actor_stop_failed", method=method, error=str(exc))
    finally:
        ray.kill(actor)
