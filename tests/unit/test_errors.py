from __future__ import annotations

import inspect

import x0tta6bl4.errors as errors
from x0tta6bl4.errors import BackPressureError, ConfigError, RateLimitedError, X0Error


def test_all_is_complete_and_sorted() -> None:
    public = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, X0Error)
    }
    assert set(errors.__all__) == public
    assert errors.__all__ == sorted(errors.__all__)


def test_every_error_is_drawn_in_the_module_tree() -> None:
    doc = errors.__doc__ or ""
    missing = [name for name in errors.__all__ if f" {name} " not in doc]
    assert missing == []


def test_message_fix_and_context() -> None:
    exc = ConfigError("bad port", port=70000)
    assert str(exc).startswith("bad port (fix: run `x0tta6bl4 config show`")
    assert exc.context == {"port": 70000}
    assert str(X0Error("plain")) == "plain"


def test_typed_fields() -> None:
    limited = RateLimitedError("trongrid", 2.5)
    assert (limited.retry_after_s, limited.status, limited.service) == (2.5, 429, "trongrid")
    assert "retry in 2.5 s" in str(limited)
    full = BackPressureError(10, 10)
    assert (full.num_queued, full.max_queued) == (10, 10)
