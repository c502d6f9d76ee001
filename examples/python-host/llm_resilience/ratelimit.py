"""Rate limits per chat session: :class:`RateLimiter` (GCRA, weighted, bounded memory).

It wraps ``interface ratelimit`` of the component; the config is the core's
``RateLimitConfig`` (``{}``: 10 messages per minute per session, as the Go service plans)::

    limiter = llmr.RateLimiter({"limit": 10, "period_ms": 60_000})
    verdict = limiter.check(session_id, 1, now_ms())
    if not verdict.allowed:
        reply("Slow down a little", retry_in_ms=verdict.retry_in_ms)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

from wasmtime import component as wc

from ._resource import (
    ConfigLike,
    Resource,
    SnapshotLike,
    config_json,
    field,
    snapshot_json,
    text,
    u32,
    u64,
)
from .errors import IncompatibleComponentError, LimiterKeyError, LimitError
from .plugin import Plugin

__all__ = ["Verdict", "Allowed", "Denied", "CheckResult", "RateLimiter", "RATELIMIT_INTERFACE"]

#: The interface this class calls.
RATELIMIT_INTERFACE = "llm:resilience/ratelimit@0.1.0"

_KEY_CODES = {"empty-key", "key-too-long"}
_MESSAGES = {
    "zero-units": "zero units were asked for",
    "exceeds-burst": "more units than the burst: no wait would ever allow them",
}


class Verdict(str, enum.Enum):
    """The answer to a check, as a tag; the values are the WIT's names."""

    #: Go ahead: the units are spent.
    ALLOWED = "allowed"
    #: Wait, or tell the customer to slow down: nothing is spent.
    DENIED = "denied"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Allowed:
    """The units are spent."""

    #: Always :attr:`Verdict.ALLOWED`.
    verdict: ClassVar[Verdict] = Verdict.ALLOWED
    #: Always ``True``.
    allowed: ClassVar[bool] = True
    #: Units that could still be spent right now.
    remaining: int


@dataclass(frozen=True)
class Denied:
    """Nothing is spent; the same request is allowed in ``retry_in_ms``."""

    #: Always :attr:`Verdict.DENIED`.
    verdict: ClassVar[Verdict] = Verdict.DENIED
    #: Always ``False``.
    allowed: ClassVar[bool] = False
    #: When the same request would be allowed, ms from now.
    retry_in_ms: int


#: The answer to :meth:`RateLimiter.check`.
CheckResult = Union[Allowed, Denied]


class RateLimiter(Resource):
    """A keyed rate limiter living in a :class:`Plugin`'s component instance.

    Args:
        config: a ``RateLimitConfig`` as a dict (``limit``, ``period_ms``, ``burst``,
            ``max_keys``, ``hash_seed``; ``None`` or ``{}`` for 10 per minute).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.

    Every keyed method raises :class:`LimitError` when the check cannot be answered (its
    ``code`` says why); a bad key raises a :class:`LimiterKeyError`, which is both a
    ``LimitError`` and an :class:`InvalidKeyError`.
    """

    _INTERFACE = RATELIMIT_INTERFACE
    _RESOURCE = "limiter"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "RateLimiter":
        return cls._new(plugin, "rate-limit config", "[static]limiter.create",
                        config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    @classmethod
    def restore(cls, snapshot: SnapshotLike, *, plugin: Optional[Plugin] = None) -> "RateLimiter":
        """A limiter from a :meth:`snapshot`.

        Raises:
            ConfigError: the snapshot is corrupt or inconsistent.
        """
        return cls._new(plugin, "rate-limit snapshot", "[static]limiter.restore",
                        snapshot_json(snapshot))

    def check(self, key: str, units: int, now_ms: int) -> CheckResult:
        """Asks to spend ``units`` for ``key`` at ``now_ms``."""
        key = text("key", key)
        raw = self._call("check", key, u32("units", units), u64("now_ms", now_ms))
        raw = _ok(key, raw)
        if not isinstance(raw, wc.Variant):
            raise IncompatibleComponentError(f"verdict is {raw!r}")
        if raw.tag == "allowed":
            return Allowed(field(raw.payload, "remaining"))
        if raw.tag == "denied":
            return Denied(field(raw.payload, "retry-in-ms"))
        raise IncompatibleComponentError(f"unknown verdict {raw.tag!r}")

    def settle(self, key: str, reserved: int, actual: int, now_ms: int) -> None:
        """Settles a reservation: ``reserved`` units were allowed, the call cost ``actual``
        (the difference is refunded or debited: for tokens-per-minute budgets)."""
        key = text("key", key)
        _ok(key, self._call("settle", key, u32("reserved", reserved), u32("actual", actual),
                            u64("now_ms", now_ms)))

    def block_until(self, key: str, until_ms: int, now_ms: int) -> None:
        """Denies ``key`` until ``until_ms`` (a provider's 429 hint); never shortens a wait."""
        key = text("key", key)
        _ok(key, self._call("block-until", key, u64("until_ms", until_ms), u64("now_ms", now_ms)))

    def remaining(self, key: str, now_ms: int) -> int:
        """Units ``key`` could spend now without waiting."""
        key = text("key", key)
        raw = _ok(key, self._call("remaining", key, u64("now_ms", now_ms)))
        if not isinstance(raw, int):
            raise IncompatibleComponentError(f"remaining is {raw!r}")
        return raw

    def __len__(self) -> int:
        """Keys held."""
        return int(self._call("len"))

    def __bool__(self) -> bool:
        # A limiter holding no keys is still a limiter: never falsy.
        return True

    def snapshot(self) -> str:
        """The whole state as JSON text, for :meth:`restore` after a restart."""
        raw = self._call("snapshot")
        if not isinstance(raw, str):
            raise IncompatibleComponentError(f"snapshot() returned {type(raw).__name__}, not str")
        return raw


def _ok(key: str, raw: Any) -> Any:
    """The ok value of a ``result<T, limit-error>`` (untagged: an error is the enum's name)."""
    if isinstance(raw, str):
        if raw in _KEY_CODES:
            raise LimiterKeyError(raw, key)
        raise LimitError(raw, f"{raw}: {_MESSAGES.get(raw, 'refused')}")
    return raw
