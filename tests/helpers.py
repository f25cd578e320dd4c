"""Helpers for tests: wait on a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def wait_for(
    condition: Callable[[], object],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns a truthy value; fail the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {message}")
        time.sleep(interval_s)


async def async_wait_for(
    condition: Callable[[], Awaitable[object]],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    message: str = "condition",
) -> object:
    """The coroutine twin of :func:`wait_for` for async tests."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {message}")
        await asyncio.sleep(interval_s)
