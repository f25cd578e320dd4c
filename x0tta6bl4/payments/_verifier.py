"""The verifier: polls chain APIs per stream and hands final transfers to the ledger.

A verifier keeps no durable state: cursors live in the ledger and advance in
the same transaction that records the transfers, so a verifier (or the
ledger) killed at any point loses nothing and credits nothing twice after a
restart; the worst case is re-reading a page the ledger then de-duplicates by
(chain, tx id).  Several verifiers split the streams between them with leases;
if two ever poll the same stream, the ledger still credits once.

Contract of :meth:`Verifier.run`: each cycle is idempotent, an error in one
stream backs that stream off (exponential, with jitter, at least the
``Retry-After`` the service sent) and never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from x0tta6bl4 import loggers
from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.errors import RateLimitedError, X0Error
from x0tta6bl4.payments._ledger import LedgerApi
from x0tta6bl4.payments._models import Chain, TransferStatus
from x0tta6bl4.payments._networks import ChainConfig
from x0tta6bl4.payments._repository import Outcome, StreamWork, parse_stream, stream_of
from x0tta6bl4.payments._source import ChainSource

__all__ = ["PollResult", "Verifier", "backoff_delay", "sleep_or_stop"]

log = loggers.payments

LEASE_TTL_S = 10.0
"""Leases are renewed every second or so; a dead verifier's streams move on after this."""


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` or until ``stop`` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def backoff_delay(
    failures: int, base_s: float, max_s: float, rng: random.Random, retry_after_s: float = 0.0
) -> float:
    """Exponential backoff with jitter in [50 %, 100 %], never below ``retry_after_s``."""
    ceiling = min(max_s, base_s * 2.0 ** min(failures, 30))
    return max(retry_after_s, ceiling * rng.uniform(0.5, 1.0))


@dataclass(frozen=True)
class PollResult:
    """What one poll of one stream did."""

    stream: str
    outcomes: list[Outcome] = field(default_factory=list)
    pending: int = 0
    error: str | None = None
    cursor: str | None = None
    """The stream's cursor as committed with ``outcomes``."""

    @property
    def credited(self) -> int:
        return sum(1 for o in self.outcomes if o.new and o.status is TransferStatus.CREDITED)


@dataclass
class _Schedule:
    due: float = 0.0
    failures: int = 0


class Verifier:
    """Polls the streams (chain, receiving address) that have open orders.

    Args:
        ledger: the ledger, in-process or a Ray actor behind :class:`LedgerApi`.
        sources: one :class:`ChainSource` per chain.
        chains: receiving addresses and tokens.
        settings: poll intervals and backoff limits.
        owner: a name unique among running verifiers (lease owner).
        lease: take stream leases from the ledger; False polls every stream.
    """

    def __init__(
        self,
        ledger: LedgerApi,
        sources: dict[Chain, ChainSource],
        chains: ChainConfig,
        settings: PaymentsSettings,
        owner: str = "verifier",
        lease: bool = True,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.sources = sources
        self.settings = settings
        self.owner = owner
        self.use_leases = lease
        self.clock = clock
        self.rng = rng or random.Random()
        self.configured = {stream_of(Chain.TRON, a) for a in chains.tron_addresses} | {
            stream_of(Chain.TON, a) for a in chains.ton_addresses
        }
        self._schedule: dict[str, _Schedule] = {}
        self._work: dict[str, StreamWork] = {}
        self.polls = 0
        self.errors = 0
        self.held: list[str] = []
        self.log = log.bind(verifier=owner)

    async def poll(
        self,
        stream: str,
        work: StreamWork | None = None,
        cursor: str | None = None,
        rescan: bool = False,
    ) -> PollResult:
        """Poll one stream once and record what is final; errors propagate.

        ``cursor``: the one this verifier committed last (None: ask the ledger).
        ``rescan``: ignore the cursor and read from ``work.since`` (reconcile).
        """
        chain, address = parse_stream(stream)
        source = self.sources.get(chain)
        if source is None:
            return PollResult(stream, error=f"no source for {chain.value}")
        if work is None:
            work = (await self.ledger.stream_work()).get(stream)
        if cursor is None and not rescan:
            cursor = await self.ledger.cursor(stream)

        async def known(keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
            return await self.ledger.known(chain, keys) if keys else set()

        batch = await source.fetch(address, cursor, work.since if work else None, known)
        outcomes = await self.ledger.record(stream, batch.transfers, batch.cursor)
        self.polls += 1
        return PollResult(stream, outcomes, batch.pending, cursor=batch.cursor or cursor)

    async def refresh(self) -> dict[str, StreamWork]:
        """Read the work per stream and (re)take this verifier's leases."""
        work = await self.ledger.stream_work()
        streams = sorted(s for s in work if s in self.configured)
        if self.use_leases:
            self.held = await self.ledger.lease(self.owner, streams, LEASE_TTL_S)
        else:
            self.held = streams
        self._work = work
        return work

    async def cycle(self) -> list[PollResult]:
        """One pass: lease streams, poll the ones that are due, schedule the next polls."""
        work = await self.refresh()
        now = self.clock()
        due = [s for s in self.held if self._schedule.setdefault(s, _Schedule()).due <= now]
        results = await asyncio.gather(*(self._poll_safely(s, work[s]) for s in due))
        for result in results:
            self._reschedule(result, work[result.stream], now)
        return list(results)

    async def _poll_safely(
        self, stream: str, work: StreamWork, cursor: str | None = None
    ) -> PollResult:
        try:
            return await self.poll(stream, work, cursor)
        except RateLimitedError as exc:
            self._backoff(stream, exc.retry_after_s)
            self.log.warning("rate_limited", stream=stream, retry_after_s=exc.retry_after_s)
            return PollResult(stream, error=str(exc))
        except X0Error as exc:
            self._backoff(stream)
            self.log.error("poll_failed", stream=stream, error=str(exc), **exc.context)
            return PollResult(stream, error=str(exc))
        except Exception as exc:
            self._backoff(stream)
            self.log.exception("poll_crashed", stream=stream)
            return PollResult(stream, error=repr(exc))

    def _backoff(self, stream: str, retry_after_s: float = 0.0) -> None:
        schedule = self._schedule.setdefault(stream, _Schedule())
        schedule.failures += 1
        self.errors += 1
        delay = backoff_delay(
            schedule.failures,
            self.settings.poll_interval_s,
            self.settings.backoff_max_s,
            self.rng,
            retry_after_s,
        )
        schedule.due = self.clock() + delay

    def _reschedule(self, result: PollResult, work: StreamWork, started: float) -> None:
        """Next poll one interval after this one started (a slow poll is not stretched)."""
        if result.error is not None:
            return
        schedule = self._schedule[result.stream]
        schedule.failures = 0
        busy = work.pending > 0 or result.pending > 0
        interval = self.settings.poll_interval_s if busy else self.settings.idle_poll_interval_s
        schedule.due = started + interval

    async def _stream_loop(self, stream: str) -> None:
        """Poll one held stream on its own schedule, so a slow stream delays no other."""
        schedule = self._schedule.setdefault(stream, _Schedule())
        cursor: str | None = None  # read from the ledger on the first poll
        while stream in self._work:
            await asyncio.sleep(max(0.0, schedule.due - self.clock()))
            work = self._work.get(stream)
            if work is None:
                return
            started = self.clock()
            result = await self._poll_safely(stream, work, cursor)
            if result.error is None:
                cursor = result.cursor
            self._reschedule(result, work, started)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; releases this verifier's leases on the way out.

        Every ``poll_interval_s`` (at most 1 s) it renews leases and learns of
        new open orders; each held stream is polled by its own task.
        """
        self.log.info("verifier_started", streams=sorted(self.configured))
        loops: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except X0Error as exc:
                    self.log.error("lease_failed", error=str(exc), **exc.context)
                except Exception:
                    self.log.exception("lease_crashed")
                for stream in set(loops) - set(self.held):
                    loops.pop(stream).cancel()
                for stream in self.held:
                    if stream not in loops or loops[stream].done():
                        loops[stream] = asyncio.create_task(self._stream_loop(stream))
                await sleep_or_stop(stop, min(1.0, self.settings.poll_interval_s))
        finally:
            for task in loops.values():
                task.cancel()
            await asyncio.gather(*loops.values(), return_exceptions=True)
            if self.use_leases:
                await self.ledger.release(self.owner)
            self.log.info("verifier_stopped", polls=self.polls, errors=self.errors)
