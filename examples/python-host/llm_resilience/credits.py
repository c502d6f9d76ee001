"""Credit monitoring for OpenRouter: :func:`parse_key`, :func:`parse_credits`,
:class:`CreditMonitor` (alerts once per crossing, with hysteresis) and
:func:`suggest_max_tokens` (a 402's "can only afford M").

They wrap ``interface credits`` of the component; the monitor's config is the core's
``CreditConfig`` (``{}``: warning $5, critical $1, $1/day, 24 h runway)::

    monitor = llmr.CreditMonitor()
    key = llmr.parse_key(requests.get(KEY_URL, headers=auth).text)
    for event in monitor.observe(llmr.CreditSnapshot(key=key), now_ms(), time.time_ns() // 10**6):
        notify_ops(event.message)        # redacted; at most one per crossing

Labels, error messages and alert messages are redacted by the component: no API key appears in
anything it returns.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from wasmtime import component as wc

from ._resource import (
    ConfigLike,
    Resource,
    SnapshotLike,
    _plugin,
    config_json,
    field,
    optional_u64,
    snapshot_json,
    text,
    u64,
)
from .errors import CreditsError, IncompatibleComponentError
from .plugin import Plugin

__all__ = [
    "LimitReset",
    "KeyInfo",
    "CreditsInfo",
    "CreditSnapshot",
    "Affordable",
    "AlertKind",
    "AlertState",
    "AlertEvent",
    "CreditStatus",
    "CreditMonitor",
    "parse_key",
    "parse_credits",
    "suggest_max_tokens",
    "CREDITS_INTERFACE",
]

#: The interface these functions call.
CREDITS_INTERFACE = "llm:resilience/credits@0.1.0"


class LimitReset(str, enum.Enum):
    """When a key's spending limit resets (midnight UTC; weeks start on Monday)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    #: A value this version does not know.
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


class AlertKind(str, enum.Enum):
    """Which alert; the values are the WIT's names, in the order events are emitted."""

    #: The balance is under the critical threshold.
    BALANCE_CRITICAL = "balance-critical"
    #: The balance is under the warning threshold.
    BALANCE_WARNING = "balance-warning"
    #: The runway is under its threshold.
    RUNWAY = "runway"
    #: Today's spend is over its threshold.
    DAILY_SPEND = "daily-spend"

    def __str__(self) -> str:
        return self.value


class AlertState(str, enum.Enum):
    """Whether an alert started or ended."""

    #: The value crossed the threshold; silent until it resolves.
    FIRED = "fired"
    #: The value recovered clearly past the threshold; armed again.
    RESOLVED = "resolved"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class KeyInfo:
    """What ``GET /api/v1/key`` says about the key. Every field is optional."""

    #: The key's label, redacted (it can be the key itself), at most 128 bytes.
    label: Optional[str] = None
    #: Total credit usage of the key, USD. Only grows.
    usage: Optional[float] = None
    #: Usage in the current UTC day, USD.
    usage_daily: Optional[float] = None
    #: Usage in the current UTC week, USD.
    usage_weekly: Optional[float] = None
    #: Usage in the current UTC month, USD.
    usage_monthly: Optional[float] = None
    #: Total BYOK usage, USD.
    byok_usage: Optional[float] = None
    #: The key's spending limit, USD; ``None``: unlimited.
    limit: Optional[float] = None
    #: What is left of the limit, USD (can be slightly negative).
    limit_remaining: Optional[float] = None
    #: When the limit resets; ``None``: never.
    limit_reset: Optional[LimitReset] = None
    #: Whether the key is on the free tier.
    is_free_tier: Optional[bool] = None
    #: Whether BYOK usage counts against the limit.
    include_byok_in_limit: Optional[bool] = None
    #: When the key expires (ISO 8601, as sent), at most 128 bytes.
    expires_at: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON (snake_case; the enum as its name)."""
        d = asdict(self)
        d["limit_reset"] = None if self.limit_reset is None else self.limit_reset.value
        return d


@dataclass(frozen=True)
class CreditsInfo:
    """What ``GET /api/v1/credits`` says about the account (needs a management key)."""

    #: Credits ever bought, USD.
    total_credits: float
    #: Credits ever used, USD. Only grows.
    total_usage: float

    @property
    def balance(self) -> float:
        """``total_credits − total_usage``, USD."""
        return self.total_credits - self.total_usage

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return asdict(self)


@dataclass(frozen=True)
class CreditSnapshot:
    """One poll's worth of data: either response, or both."""

    #: From ``GET /api/v1/key`` (or its body, parsed with :func:`parse_key`).
    key: Optional[KeyInfo] = None
    #: From ``GET /api/v1/credits`` (or its body, parsed with :func:`parse_credits`).
    credits: Optional[CreditsInfo] = None


@dataclass(frozen=True)
class Affordable:
    """What a 402 "can only afford" message says, and the ``max_tokens`` to retry with."""

    #: "You requested up to N tokens", when stated.
    requested_tokens: Optional[int]
    #: The smallest "can only afford M" in the text.
    affordable_tokens: int
    #: ``affordable_tokens`` less 5 %, never more than requested; ``None`` when nothing is left
    #: (top up instead of retrying).
    suggested_max_tokens: Optional[int]

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return asdict(self)


@dataclass(frozen=True)
class AlertEvent:
    """One alert event: at most one ``fired`` per crossing, one ``resolved`` per recovery."""

    #: Which alert.
    alert: AlertKind
    #: Started or ended.
    state: AlertState
    #: The value that crossed (USD, or hours for runway); ``None`` for a runway that became
    #: unlimited.
    value: Optional[float]
    #: The threshold, in the same unit.
    threshold: float
    #: A line for an operator, redacted.
    message: str

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return {"alert": self.alert.value, "state": self.state.value, "value": self.value,
                "threshold": self.threshold, "message": self.message}


@dataclass(frozen=True)
class CreditStatus:
    """What the monitor knew after the last snapshot."""

    #: The binding balance, USD (the smaller of account balance and key remaining).
    balance_usd: Optional[float]
    #: The account balance, USD.
    account_balance_usd: Optional[float]
    #: The key's ``limit_remaining``, USD.
    key_remaining_usd: Optional[float]
    #: The account's burn rate, USD per hour.
    account_burn_usd_per_hour: Optional[float]
    #: The key's burn rate, USD per hour.
    key_burn_usd_per_hour: Optional[float]
    #: Hours of balance left; ``None`` when unknown or unlimited.
    runway_hours: Optional[float]
    #: True when a burn rate of zero makes the runway unlimited.
    runway_unlimited: bool
    #: Today's spend, USD.
    daily_spend_usd: Optional[float]
    #: Alerts currently fired, in the order events are emitted.
    active: tuple[AlertKind, ...]

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["active"] = [a.value for a in self.active]
        return d


def parse_key(body: str, *, plugin: Optional[Plugin] = None) -> KeyInfo:
    """Parses a ``GET /api/v1/key`` body. Missing, null, unknown and deprecated fields are fine.

    Raises:
        CreditsError: the body is too large, not JSON, an API error, or has a wrong field.
    """
    raw = _plugin(plugin)._call_fn(CREDITS_INTERFACE, "parse-key", text("body", body))
    return _key_info(_ok(raw))


def parse_credits(body: str, *, plugin: Optional[Plugin] = None) -> CreditsInfo:
    """Parses a ``GET /api/v1/credits`` body; both totals are required.

    Raises:
        CreditsError: the body is too large, not JSON, an API error, or lacks a total.
    """
    raw = _plugin(plugin)._call_fn(CREDITS_INTERFACE, "parse-credits", text("body", body))
    return _credits_info(_ok(raw))


def suggest_max_tokens(text_: str, *, plugin: Optional[Plugin] = None) -> Optional[Affordable]:
    """Reads OpenRouter's 402 "… can only afford M" (message or whole body) and suggests a
    ``max_tokens`` that fits; ``None`` when the text has no such number. Reads at most 64 KiB."""
    raw = _plugin(plugin)._call_fn(CREDITS_INTERFACE, "suggest-max-tokens", text("text", text_))
    if raw is None:
        return None
    return Affordable(field(raw, "requested-tokens"), field(raw, "affordable-tokens"),
                      field(raw, "suggested-max-tokens"))


class CreditMonitor(Resource):
    """Watches balance, daily spend and runway; alerts once per crossing.

    Args:
        config: a ``CreditConfig`` as a dict (``None`` or ``{}`` for the defaults; a threshold
            set to ``None`` turns its alert off).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.
    """

    _INTERFACE = CREDITS_INTERFACE
    _RESOURCE = "credit-monitor"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "CreditMonitor":
        return cls._new(plugin, "credit config", "[static]credit-monitor.create",
                        config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    @classmethod
    def restore(cls, snapshot: SnapshotLike, *, plugin: Optional[Plugin] = None) -> "CreditMonitor":
        """A monitor from a :meth:`snapshot`.

        Raises:
            ConfigError: the snapshot is corrupt or inconsistent.
        """
        return cls._new(plugin, "credit monitor snapshot", "[static]credit-monitor.restore",
                        snapshot_json(snapshot))

    def observe(
        self, snapshot: CreditSnapshot, now_ms: int, wall_clock_ms: Optional[int] = None
    ) -> list[AlertEvent]:
        """Feeds one poll taken at ``now_ms`` (monotonic) and, when known, ``wall_clock_ms``
        (Unix ms, for the UTC day). The alert events it caused — usually none.

        ``snapshot.key`` / ``snapshot.credits`` may also be the response bodies (``str``), which
        are parsed first (raising :class:`CreditsError`)."""
        if not isinstance(snapshot, CreditSnapshot):
            raise TypeError(f"snapshot must be a CreditSnapshot, not {type(snapshot).__name__}")
        key, credits = snapshot.key, snapshot.credits
        if isinstance(key, str):
            key = parse_key(key, plugin=self.plugin)
        if isinstance(credits, str):
            credits = parse_credits(credits, plugin=self.plugin)
        record = wc.Record()
        record.key = None if key is None else _key_record(key)
        record.credits = None if credits is None else _credits_record(credits)
        raw = self._call("observe", record, u64("now_ms", now_ms),
                         optional_u64("wall_clock_ms", wall_clock_ms))
        return [_event(e) for e in raw]

    def status(self) -> CreditStatus:
        """What was known after the last snapshot."""
        return _status(self._call("status"))

    def snapshot(self) -> str:
        """The whole state as JSON text, for :meth:`restore` after a restart."""
        raw = self._call("snapshot")
        if not isinstance(raw, str):
            raise IncompatibleComponentError(f"snapshot() returned {type(raw).__name__}, not str")
        return raw


# ---- conversions ------------------------------------------------------------------------

_KEY_FIELDS = [f.name for f in fields(KeyInfo)]
_STATUS_FIELDS = [f.name for f in fields(CreditStatus)]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _ok(raw: Any) -> Any:
    """The ok value of ``result<T, credits-error>``; raises :class:`CreditsError`."""
    if isinstance(raw, wc.Variant) and raw.tag in ("ok", "err"):
        if raw.tag == "ok":
            return raw.payload
        raw = raw.payload
    if not isinstance(raw, wc.Variant):
        return raw
    tag, p = raw.tag, raw.payload
    if tag == "too-large":
        raise CreditsError(tag, {"bytes": p},
                           f"response of {p} bytes is larger than the 65536 bytes parsed")
    if tag == "invalid-json":
        line, column = field(p, "line"), field(p, "column")
        raise CreditsError(tag, {"line": line, "column": column},
                           f"response is not valid JSON (line {line}, column {column})")
    if tag == "api":
        code, message = field(p, "code"), field(p, "message")
        shown = "" if code is None else f" {code}"
        raise CreditsError(tag, {"code": code, "message": message},
                           f"OpenRouter returned an error{shown}: {message}")
    if tag == "missing-field":
        raise CreditsError(tag, {"field": p}, f"response has no {p}")
    if tag == "invalid-field":
        f, expected, found = field(p, "field"), field(p, "expected"), field(p, "found")
        raise CreditsError(tag, {"field": f, "expected": expected, "found": found},
                           f"{f} must be {expected}, got {found}")
    if tag == "out-of-range":
        raise CreditsError(tag, {"field": p}, f"{p} is out of range")
    raise IncompatibleComponentError(f"unknown credits error {tag!r}")


def _key_info(raw: Any) -> KeyInfo:
    values = {name: field(raw, _kebab(name)) for name in _KEY_FIELDS}
    if values["limit_reset"] is not None:
        try:
            values["limit_reset"] = LimitReset(values["limit_reset"])
        except ValueError:
            raise IncompatibleComponentError(f"unknown limit reset {values['limit_reset']!r}") from None
    return KeyInfo(**values)


def _credits_info(raw: Any) -> CreditsInfo:
    return CreditsInfo(field(raw, "total-credits"), field(raw, "total-usage"))


def _optional_float(what: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number or None, not {type(value).__name__}")
    return float(value)


def _optional_bool(what: str, value: Any) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"{what} must be a bool or None, not {type(value).__name__}")


def _key_record(key: KeyInfo) -> Any:
    if not isinstance(key, KeyInfo):
        raise TypeError(f"snapshot.key must be a KeyInfo or a body, not {type(key).__name__}")
    record = wc.Record()
    for name in ("usage", "usage_daily", "usage_weekly", "usage_monthly", "byok_usage", "limit",
                 "limit_remaining"):
        setattr(record, _kebab(name), _optional_float(name, getattr(key, name)))
    for name in ("is_free_tier", "include_byok_in_limit"):
        setattr(record, _kebab(name), _optional_bool(name, getattr(key, name)))
    for name in ("label", "expires_at"):
        value = getattr(key, name)
        setattr(record, _kebab(name), None if value is None else text(name, value))
    reset = key.limit_reset
    setattr(record, "limit-reset", None if reset is None else LimitReset(reset).value)
    return record


def _credits_record(credits: CreditsInfo) -> Any:
    if not isinstance(credits, CreditsInfo):
        raise TypeError(
            f"snapshot.credits must be a CreditsInfo or a body, not {type(credits).__name__}"
        )
    record = wc.Record()
    for name in ("total_credits", "total_usage"):
        value = _optional_float(name, getattr(credits, name))
        if value is None:
            raise TypeError(f"{name} must be a number")
        setattr(record, _kebab(name), value)
    return record


def _alert_kind(raw: Any) -> AlertKind:
    try:
        return AlertKind(raw)
    except ValueError:
        raise IncompatibleComponentError(f"unknown alert kind {raw!r}") from None


def _event(raw: Any) -> AlertEvent:
    try:
        state = AlertState(field(raw, "state"))
    except ValueError:
        raise IncompatibleComponentError(f"unknown alert state {field(raw, 'state')!r}") from None
    return AlertEvent(_alert_kind(field(raw, "alert")), state, field(raw, "value"),
                      field(raw, "threshold"), field(raw, "message"))


def _status(raw: Any) -> CreditStatus:
    values = {name: field(raw, _kebab(name)) for name in _STATUS_FIELDS}
    values["runway_unlimited"] = bool(values["runway_unlimited"])
    values["active"] = tuple(_alert_kind(a) for a in values["active"])
    return CreditStatus(**values)
