"""The one exception hierarchy of x0tta6bl4.

Every error a user can see says what happened (``str(exc)``) and how to fix it
(``exc.fix``).  Foreign exceptions (pyroute2, bcc, httpx, aiogram, Ray) are
translated once, in the adapter that calls the foreign library, with
``raise OurError(...) from exc``; code above the adapters never catches a
third-party type.

    X0Error                      base: message, fix, context fields
    ├── ConfigError              a setting is missing, malformed or contradictory
    ├── DependencyError          an optional package or program is not installed
    ├── PrivilegeError           the operation needs root or a capability
    ├── KernelFeatureError       the running kernel lacks a feature (netem, XDP mode, BTF)
    ├── ClusterError             Ray could not start, connect, or place an actor
    ├── MeshError                the mesh data or control plane failed
    │   ├── TopologyError        a topology is invalid (unknown node, duplicate link, ...)
    │   ├── InterfaceError       a network interface is missing, down or not ours
    │   │   ├── InterfaceNotFoundError  no interface of that name (in that namespace)
    │   │   └── InterfaceDownError      the interface exists but is administratively down
    │   └── RouteError           a kernel route could not be read or written
    ├── SecurityError            a message failed signature, replay or size checks
    ├── TelemetryError           telemetry could not be collected or delivered
    │   └── BackPressureError    the consumer is behind; the batch was dropped
    ├── EbpfError                an eBPF program failed to compile, load or attach
    │   ├── AttachConflictError  another program already holds the hook we attach to
    │   └── VerifierError        the kernel verifier rejected a program (carries its log)
    ├── MLError                  training, inference or a dataset failed
    ├── PaymentError             an order or payment cannot be processed
    │   └── OrderStateError      an order is not in the state the operation needs
    └── ExternalServiceError     an outside API (TronGrid, toncenter, Telegram) failed
        ├── RateLimitedError     the service asked us to slow down (carries retry_after_s)
        └── MalformedResponseError  the service answered something we cannot parse
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AttachConflictError",
    "BackPressureError",
    "ClusterError",
    "ConfigError",
    "DependencyError",
    "EbpfError",
    "ExternalServiceError",
    "InterfaceDownError",
    "InterfaceError",
    "InterfaceNotFoundError",
    "KernelFeatureError",
    "MLError",
    "MalformedResponseError",
    "MeshError",
    "OrderStateError",
    "PaymentError",
    "PrivilegeError",
    "RateLimitedError",
    "RouteError",
    "SecurityError",
    "TelemetryError",
    "TopologyError",
    "VerifierError",
    "X0Error",
]


class X0Error(Exception):
    """Base of every error x0tta6bl4 raises on purpose.

    Args:
        message: what happened, in one sentence.
        fix: what the user can do about it; shown under the message.
        **context: structured fields (node, link, order, ...) for logs.
    """

    default_fix: str = ""

    def __init__(self, message: str, *, fix: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix if fix is not None else self.default_fix
        self.context = context

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} (fix: {self.fix})"


class ConfigError(X0Error):
    """A setting is missing, malformed or contradictory."""

    default_fix = "run `x0tta6bl4 config show` to see the effective configuration"


class DependencyError(X0Error):
    """An optional package or program is not installed."""

    default_fix = "run `make run` (as root) to install what is missing"


class PrivilegeError(X0Error):
    """The operation needs root or a capability (CAP_NET_ADMIN, CAP_BPF)."""

    default_fix = "run as root, or grant CAP_NET_ADMIN and CAP_BPF"


class KernelFeatureError(X0Error):
    """The running kernel lacks a feature (netem, an XDP mode, BTF, headers)."""


class ClusterError(X0Error):
    """Ray could not start, connect, or place an actor."""

    default_fix = "check `ray status` and the Ray dashboard"


class MeshError(X0Error):
    """The mesh data plane or control plane failed."""


class TopologyError(MeshError):
    """A topology is invalid: unknown node, duplicate link, disconnected graph."""


class InterfaceError(MeshError):
    """A network interface is missing, down, or not ours to touch."""

    default_fix = "check `ip link show` for the interface name and state"


class InterfaceNotFoundError(InterfaceError):
    """No interface of that name exists (in the namespace that was searched)."""


class InterfaceDownError(InterfaceError):
    """The interface exists but is administratively down."""


class RouteError(MeshError):
    """A kernel route could not be read or written."""


class SecurityError(X0Error):
    """A message failed its signature, replay-window or size check."""


class TelemetryError(X0Error):
    """Telemetry could not be collected or delivered."""


class BackPressureError(TelemetryError):
    """The consumer is behind; the batch was dropped and counted."""

    def __init__(self, num_queued: int, max_queued: int) -> None:
        super().__init__(
            f"telemetry queue full ({num_queued}/{max_queued}); batch dropped",
            fix="raise supervisor.max_queued_batches or the telemetry interval",
            num_queued=num_queued,
            max_queued=max_queued,
        )
        self.num_queued = num_queued
        self.max_queued = max_queued


class EbpfError(X0Error):
    """An eBPF program failed to compile, load or attach."""


class AttachConflictError(EbpfError):
    """Another program (not one of ours, or one a live owner holds) is on the hook already."""


class VerifierError(EbpfError):
    """The kernel verifier rejected a program; ``log`` holds its output."""

    def __init__(self, message: str, *, log: str, **context: Any) -> None:
        super().__init__(message, fix="read the verifier log below and fix the program", **context)
        self.log = log

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.log}"


class MLError(X0Error):
    """Training, inference or a dataset failed."""


class PaymentError(X0Error):
    """An order or payment cannot be processed."""


class OrderStateError(PaymentError):
    """An order is not in the state the operation needs."""


class ExternalServiceError(X0Error):
    """An outside API (TronGrid, toncenter, Telegram) failed."""

    def __init__(
        self, message: str, *, service: str, status: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, service=service, status=status, **kwargs)
        self.service = service
        self.status = status


class RateLimitedError(ExternalServiceError):
    """The service asked us to slow down; retry after ``retry_after_s`` seconds."""

    def __init__(self, service: str, retry_after_s: float, status: int | None = 429) -> None:
        super().__init__(
            f"{service} rate-limited us; retry in {retry_after_s:g} s",
            service=service,
            status=status,
            fix="configure an API key or raise the poll interval",
            retry_after_s=retry_after_s,
        )
        self.retry_after_s = retry_after_s


class MalformedResponseError(ExternalServiceError):
    """The service answered something we cannot parse; nothing was changed."""
