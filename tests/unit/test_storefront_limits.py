"""Rate limits and cooldowns on a fake clock."""

from __future__ import annotations

from x0tta6bl4.storefront.limits import Cooldown, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_min=6, burst=3, clock=clock)
    assert [limiter.allow("u") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    clock.now += 9.9
    assert not limiter.allow("u")
    clock.now += 0.2  # 10 s at 6/min refills one token
    assert limiter.allow("u")
    assert not limiter.allow("u")
    clock.now += 3600
    assert [limiter.allow("u") for _ in range(4)] == [True, True, True, False]


def test_bucket_forgets_the_oldest_keys_beyond_its_size() -> None:
    limiter = RateLimiter(per_min=1, burst=1, clock=Clock(), max_keys=2)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    assert limiter.allow("a")  # forgotten, so it starts with a full bucket
    assert not limiter.allow("c")


def test_cooldown_lets_one_action_through_per_interval() -> None:
    clock = Clock()
    cooldown = Cooldown(10.0, clock=clock)
    assert cooldown.take("order") == 0.0
    assert cooldown.take("order") == 10.0
    clock.now += 4
    assert cooldown.take("order") == 6.0
    assert cooldown.take("another") == 0.0
    clock.now += 6
    assert cooldown.wait_s("order") == 0.0
    assert cooldown.take("order") == 0.0
