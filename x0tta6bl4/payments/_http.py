"""One small async JSON-over-HTTP client per outside service, with error mapping.

httpx errors and HTTP answers are translated here, once: a 429 (or TronGrid's
403 "frequency limit") becomes :class:`RateLimitedError` with the wait the
service asked for, other failures :class:`ExternalServiceError`, and a body
that is not the JSON we expect :class:`MalformedResponseError`.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

import httpx

from x0tta6bl4.errors import ExternalServiceError, MalformedResponseError, RateLimitedError

__all__ = ["JsonClient", "malformed", "retry_after_of"]

_SUSPENDED = re.compile(r"suspended for (\d+)\s*s", re.IGNORECASE)
DEFAULT_RETRY_AFTER_S = 1.0


def retry_after_of(response: httpx.Response) -> float:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or the body's hint."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header)
            return max(0.0, parsed.timestamp() - time.time())
    hint = _SUSPENDED.search(response.text)
    return float(hint.group(1)) if hint else DEFAULT_RETRY_AFTER_S


def malformed(service: str, what: str, **context: Any) -> MalformedResponseError:
    """The error for an answer that does not have the shape the API documents."""
    return MalformedResponseError(
        f"{service} answered something we cannot use: {what}; nothing was changed",
        service=service,
        fix=f"check that the {service} base URL points at the real API",
        **context,
    )


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error", "Error", "message", "result"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:200]


class JsonClient:
    """Keep-alive JSON client for one service (``service`` names it in errors)."""

    def __init__(
        self,
        service: str,
        base_url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
        max_connections: int = 8,
    ) -> None:
        self.service = service
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers or {},
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._send("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._send("POST", path, json=body)

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ExternalServiceError(
                f"{self.service} did not answer {method} {path} in time",
                service=self.service,
                fix="it will be retried with backoff; check the service status",
                path=path,
            ) from exc
        except httpx.HTTPError as exc:
            raise ExternalServiceError(
                f"{self.service} {method} {path} failed: {exc}",
                service=self.service,
                fix="check the base URL and the network; it will be retried with backoff",
                path=path,
            ) from exc
        status = response.status_code
        if status == 429 or (status == 403 and "frequency limit" in response.text.lower()):
            raise RateLimitedError(self.service, retry_after_of(response), status=status)
        if status >= 400:
            raise ExternalServiceError(
                f"{self.service} answered {status} to {method} {path}: {_error_text(response)}",
                service=self.service,
                status=status,
                fix="check the API key and the request; 5xx answers are retried with backoff",
                path=path,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise malformed(
                self.service, f"{method} {path} returned invalid JSON", path=path
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
