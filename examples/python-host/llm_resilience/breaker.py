"""Circuit breakers: :class:`Breaker` and the keyed :class:`BreakerSet`.

They wrap ``interface breaker`` of the component (``wit/llm-resilience.wit``); the rules (when a
breaker trips, how long it stays open, how half-open probes work, which kinds count) are the
core's (``BreakerConfig``). Two steps, time as an argument::

    with llmr.Breaker({"consecutive_failures": 5}) as breaker:
        admission = breaker.acquire(now_ms())
        if not admission.admitted:
            return fallback(admission.retry_in_ms)
        try:
            reply = call_the_model()
        except LlmError as e:
            breaker.record(admission.permit, llmr.Failure.of(e.classification), now_ms())
            raise
        breaker.record(admission.permit, llmr.Success(), now_ms())

Results come back tagged: :class:`Admitted` or :class:`Rejected`, :class:`Counted` or
:class:`Stale`; ``isinstance`` tells them apart, and so do ``admitted`` / ``recorded``.
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
    error_kind,
    field,
    optional_u64,
    snapshot_json,
    text,
    u32,
    u64,
)
from .classify import Classification, ErrorKind
from .errors import IncompatibleComponentError, InvalidKeyError
from .plugin import Plugin

__all__ = [
    "State",
    "Permit",
    "Admitted",
    "Rejected",
    "Admission",
    "Success",
    "Failure",
    "Ignored",
    "Outcome",
    "Transition",
    "Counted",
    "Stale",
    "Recorded",
    "Counts",
    "Breaker",
    "BreakerSet",
    "BREAKER_INTERFACE",
]

#: The interface these classes call.
BREAKER_INTERFACE = "llm:resilience/breaker@0.1.0"


class State(str, enum.Enum):
    """A breaker's state; the values are the WIT's (and the vectors') names."""

    #: Calls flow; outcomes are counted.
    CLOSED = "closed"
    #: Calls are rejected until the open period ends.
    OPEN = "open"
    #: A few probe calls test recovery.
    HALF_OPEN = "half-open"
    #: Rejects every call until ``reset`` (an operator's switch).
    FORCED_OPEN = "forced-open"
    #: Admits every call and counts nothing (an operator's switch).
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Permit:
    """Permission to make one call; give it back to ``record``."""

    #: The breaker generation the call was admitted in.
    generation: int
    #: A number unique within the breaker.
    id: int
    #: When the call was admitted, ms.
    admitted_ms: int
    #: Whether the call is a half-open probe.
    probe: bool


@dataclass(frozen=True)
class Admitted:
    """``acquire`` said yes: make the call, then ``record`` its outcome with ``permit``."""

    #: Always ``True``: tells an :class:`Admitted` from a :class:`Rejected`.
    admitted: ClassVar[bool] = True
    #: The permit to give back to ``record``.
    permit: Permit


@dataclass(frozen=True)
class Rejected:
    """``acquire`` said no: do not make the call (fall back, or wait)."""

    #: Always ``False``.
    admitted: ClassVar[bool] = False
    #: The state that rejected it.
    state: State
    #: When to try again, ms from now; ``None`` when forced open.
    retry_in_ms: Optional[int]


#: The answer to ``acquire``.
Admission = Union[Admitted, Rejected]


@dataclass(frozen=True)
class Success:
    """The provider answered."""

    #: The WIT case name.
    outcome: ClassVar[str] = "success"


@dataclass(frozen=True)
class Failure:
    """The call failed: its classified kind (only the config's ``counted_kinds`` count) and the
    server's retry hint (which may lengthen the open period)."""

    #: The WIT case name.
    outcome: ClassVar[str] = "failure"
    #: The classified kind.
    kind: ErrorKind
    #: The server's retry hint, ms.
    retry_after_ms: Optional[int] = None

    def __post_init__(self) -> None:
        # A kind's kebab-case name is accepted and stored as the enum; an unknown one is refused.
        object.__setattr__(self, "kind", error_kind(self.kind))

    @classmethod
    def of(cls, classification: Classification) -> "Failure":
        """The failure a classification describes."""
        return cls(classification.kind, classification.retry_after_ms)


@dataclass(frozen=True)
class Ignored:
    """Cancelled by the caller, or says nothing about the provider: not counted."""

    #: The WIT case name.
    outcome: ClassVar[str] = "ignored"


#: How an admitted call ended. ``record`` also takes a :class:`Classification` (a failure).
Outcome = Union[Success, Failure, Ignored]


@dataclass(frozen=True)
class Transition:
    """A change of state (``from_`` because ``from`` is a keyword)."""

    #: The state before.
    from_: State
    #: The state after.
    to: State


@dataclass(frozen=True)
class Counted:
    """The outcome was counted (or ignored by kind); the state change, if any."""

    #: The WIT case name.
    recorded: ClassVar[str] = "counted"
    #: The state change the outcome caused, or ``None``.
    transition: Optional[Transition]


@dataclass(frozen=True)
class Stale:
    """The permit is from an earlier generation, or a probe that timed out: ignored."""

    #: The WIT case name.
    recorded: ClassVar[str] = "stale"


#: What recording an outcome did.
Recorded = Union[Counted, Stale]


@dataclass(frozen=True)
class Counts:
    """Numbers for operators and metrics."""

    #: The current state.
    state: State
    #: Calls in the failure-rate window.
    window_calls: int
    #: Counted failures in the window.
    window_failures: int
    #: Slow calls in the window.
    window_slow: int
    #: Counted failures in a row.
    consecutive_failures: int
    #: Probes admitted and not yet reported.
    probes_in_flight: int
    #: Successful probes in this half-open period.
    probe_successes: int
    #: Times the breaker opened.
    times_opened: int
    #: Calls rejected since creation.
    rejected: int
    #: The current generation.
    generation: int


class Breaker(Resource):
    """One circuit breaker, living in a :class:`Plugin`'s component instance.

    Args:
        config: a ``BreakerConfig`` as a dict (``None`` or ``{}`` for the defaults: 5
            consecutive failures or 50 % of the last 20 calls, open 60 s).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.
    """

    _INTERFACE = BREAKER_INTERFACE
    _RESOURCE = "breaker"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "Breaker":
        return cls._new(plugin, "breaker config", "[static]breaker.create",
                        config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    @classmethod
    def restore(cls, snapshot: SnapshotLike, *, plugin: Optional[Plugin] = None) -> "Breaker":
        """A breaker from a :meth:`snapshot` (of this or another plugin, before a restart).

        Raises:
            ConfigError: the snapshot is corrupt or inconsistent.
        """
        return cls._new(plugin, "breaker snapshot", "[static]breaker.restore",
                        snapshot_json(snapshot))

    def acquire(self, now_ms: int) -> Admission:
        """Asks to make a call at ``now_ms``."""
        return _admission(self._call("acquire", u64("now_ms", now_ms)))

    def record(self, permit: Permit, outcome: Union[Outcome, Classification], now_ms: int) -> Recorded:
        """Records how the call admitted by ``permit`` ended."""
        return _recorded(self._call("record", _permit(permit), _outcome(outcome), u64("now_ms", now_ms)))

    def state(self, now_ms: int) -> State:
        """The state at ``now_ms``."""
        return _state(self._call("state", u64("now_ms", now_ms)))

    def counts(self, now_ms: int) -> Counts:
        """The counts at ``now_ms``."""
        raw = self._call("counts", u64("now_ms", now_ms))
        return Counts(
            state=_state(field(raw, "state")),
            window_calls=field(raw, "window-calls"),
            window_failures=field(raw, "window-failures"),
            window_slow=field(raw, "window-slow"),
            consecutive_failures=field(raw, "consecutive-failures"),
            probes_in_flight=field(raw, "probes-in-flight"),
            probe_successes=field(raw, "probe-successes"),
            times_opened=field(raw, "times-opened"),
            rejected=field(raw, "rejected"),
            generation=field(raw, "generation"),
        )

    def force_open(self, now_ms: int) -> Optional[Transition]:
        """Rejects every call until :meth:`reset`."""
        return _transition(self._call("force-open", u64("now_ms", now_ms)))

    def disable(self, now_ms: int) -> Optional[Transition]:
        """Admits every call and counts nothing until :meth:`reset`."""
        return _transition(self._call("disable", u64("now_ms", now_ms)))

    def reset(self, now_ms: int) -> Optional[Transition]:
        """Back to closed with empty counts."""
        return _transition(self._call("reset", u64("now_ms", now_ms)))

    def snapshot(self) -> str:
        """The whole state as JSON text, for :meth:`restore` after a restart."""
        return _snapshot(self._call("snapshot"))


class BreakerSet(Resource):
    """One breaker per key (a model or a provider), at most ``max_keys`` of them.

    When full, a new key evicts one whose breaker is fresh first, then the least recently used;
    an evicted key's late results are :class:`Stale`.

    Args:
        config: the ``BreakerConfig`` every breaker of the set shares, as a dict.
        max_keys: the most keys held (1..=100 000).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config or ``max_keys``.
    """

    _INTERFACE = BREAKER_INTERFACE
    _RESOURCE = "breaker-set"

    def __new__(
        cls, config: ConfigLike = None, max_keys: int = 1024, *, plugin: Optional[Plugin] = None
    ) -> "BreakerSet":
        return cls._new(plugin, "breaker-set config", "[static]breaker-set.create",
                        config_json("config", config), u32("max_keys", max_keys))

    def __init__(
        self, config: ConfigLike = None, max_keys: int = 1024, *, plugin: Optional[Plugin] = None
    ) -> None:
        pass

    @classmethod
    def restore(cls, snapshot: SnapshotLike, *, plugin: Optional[Plugin] = None) -> "BreakerSet":
        """A set from a :meth:`snapshot`.

        Raises:
            ConfigError: the snapshot is corrupt or inconsistent.
        """
        return cls._new(plugin, "breaker-set snapshot", "[static]breaker-set.restore",
                        snapshot_json(snapshot))

    def acquire(self, key: str, now_ms: int) -> Admission:
        """Asks to make a call for ``key``.

        Raises:
            InvalidKeyError: the key is empty or longer than 256 bytes.
        """
        key = text("key", key)
        return _admission(_key_result(key, self._call("acquire", key, u64("now_ms", now_ms))))

    def record(
        self, key: str, permit: Permit, outcome: Union[Outcome, Classification], now_ms: int
    ) -> Recorded:
        """Records the outcome of a call for ``key`` (an evicted key's result is stale).

        Raises:
            InvalidKeyError: the key is empty or longer than 256 bytes.
        """
        key = text("key", key)
        raw = self._call("record", key, _permit(permit), _outcome(outcome), u64("now_ms", now_ms))
        return _recorded(_key_result(key, raw))

    def state(self, key: str, now_ms: int) -> Optional[State]:
        """The state of ``key``'s breaker; ``None`` if the key is not held."""
        raw = self._call("state", text("key", key), u64("now_ms", now_ms))
        return None if raw is None else _state(raw)

    def keys(self) -> list[str]:
        """The keys held, sorted."""
        return list(self._call("keys"))

    def snapshot(self) -> str:
        """The whole state as JSON text, for :meth:`restore`."""
        return _snapshot(self._call("snapshot"))


# ---- conversions ------------------------------------------------------------------------


def _state(raw: Any) -> State:
    try:
        return State(raw)
    except ValueError:
        raise IncompatibleComponentError(f"unknown breaker state {raw!r}") from None


def _snapshot(raw: Any) -> str:
    if not isinstance(raw, str):
        raise IncompatibleComponentError(f"snapshot() returned {type(raw).__name__}, not str")
    return raw


def _key_result(key: str, raw: Any) -> Any:
    """The ok value of a ``result<T, key-error>`` (untagged: the error is the enum's name)."""
    if isinstance(raw, str):
        raise InvalidKeyError(raw, key)
    return raw


def _admission(raw: Any) -> Admission:
    if not isinstance(raw, wc.Variant):
        raise IncompatibleComponentError(f"admission is {raw!r}")
    if raw.tag == "admitted":
        p = raw.payload
        return Admitted(Permit(field(p, "generation"), field(p, "id"), field(p, "admitted-ms"),
                               bool(field(p, "probe"))))
    if raw.tag == "rejected":
        return Rejected(_state(field(raw.payload, "state")), field(raw.payload, "retry-in-ms"))
    raise IncompatibleComponentError(f"unknown admission {raw.tag!r}")


def _transition(raw: Any) -> Optional[Transition]:
    if raw is None:
        return None
    return Transition(_state(field(raw, "from")), _state(field(raw, "to")))


def _recorded(raw: Any) -> Recorded:
    if not isinstance(raw, wc.Variant):
        raise IncompatibleComponentError(f"recorded is {raw!r}")
    if raw.tag == "counted":
        return Counted(_transition(raw.payload))
    if raw.tag == "stale":
        return Stale()
    raise IncompatibleComponentError(f"unknown recorded {raw.tag!r}")


def _permit(permit: Permit) -> Any:
    if not isinstance(permit, Permit):
        raise TypeError(f"permit must be a Permit, not {type(permit).__name__}")
    record = wc.Record()
    record.generation = u64("permit.generation", permit.generation)
    record.id = u64("permit.id", permit.id)
    setattr(record, "admitted-ms", u64("permit.admitted_ms", permit.admitted_ms))
    record.probe = bool(permit.probe)
    return record


def _outcome(outcome: Union[Outcome, Classification]) -> Any:
    if isinstance(outcome, Classification):
        outcome = Failure.of(outcome)
    if isinstance(outcome, Success):
        return wc.Variant("success")
    if isinstance(outcome, Ignored):
        return wc.Variant("ignored")
    if isinstance(outcome, Failure):
        record = wc.Record()
        record.kind = error_kind(outcome.kind).value
        setattr(record, "retry-after-ms", optional_u64("retry_after_ms", outcome.retry_after_ms))
        return wc.Variant("failure", record)
    raise TypeError(
        f"outcome must be Success(), Failure(kind, retry_after_ms), Ignored() or a Classification, "
        f"not {type(outcome).__name__}"
    )
