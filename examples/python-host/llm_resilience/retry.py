"""Retry decisions under a service-wide retry budget: :class:`RetryPolicy`,
:class:`RetryBudget` and :class:`RetryCall`.

They wrap ``interface retry`` of the component; the configs are the core's ``RetryConfig`` and
``BudgetConfig``. One budget is shared by the whole service (every request deposits, every retry
withdraws), one policy by every call, and each call keeps its own attempt count::

    policy, budget = llmr.RetryPolicy(), llmr.RetryBudget()
    with policy.start_call(now_ms(), seed=random_u64(), budget=budget) as call:
        while True:
            try:
                return send(request)
            except LlmError as e:
                decision = call.decide(e.classification, now_ms(), request_tokens=count(request))
                if isinstance(decision, llmr.GiveUp):
                    raise GaveUp(decision.reason) from e
                if isinstance(decision, llmr.ShrinkContext):
                    request = shrink(request, decision.target_tokens)
                sleep_ms(decision.after_ms)

Decisions come back tagged: :class:`Retry`, :class:`ShrinkContext` or :class:`GiveUp` (its
``reason`` one of :class:`Permanent`, :class:`AttemptsExhausted`, :class:`BudgetExhausted`,
:class:`WaitTooLong`, :class:`DeadlineExceeded`, :class:`CannotShrink`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

from wasmtime import component as wc

from ._resource import (
    ConfigLike,
    Resource,
    classification_record,
    config_json,
    error_kind,
    field,
    optional_u64,
    u64,
)
from .classify import Classification, ErrorKind
from .errors import IncompatibleComponentError
from .plugin import Plugin

__all__ = [
    "GiveUpCode",
    "Permanent",
    "AttemptsExhausted",
    "BudgetExhausted",
    "WaitTooLong",
    "DeadlineExceeded",
    "CannotShrink",
    "GiveUpReason",
    "Retry",
    "ShrinkContext",
    "GiveUp",
    "Decision",
    "RetryPolicy",
    "RetryBudget",
    "RetryCall",
    "RETRY_INTERFACE",
]

#: The interface these classes call.
RETRY_INTERFACE = "llm:resilience/retry@0.1.0"


class GiveUpCode(str, enum.Enum):
    """Why a call gave up, as a tag; the values are the WIT's names."""

    #: Retrying cannot cure this kind.
    PERMANENT = "permanent"
    #: Retries for the kind or the call are used up.
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    #: The service-wide retry budget is empty.
    BUDGET_EXHAUSTED = "budget-exhausted"
    #: The server asked for too long a wait.
    WAIT_TOO_LONG = "wait-too-long"
    #: The deadline would pass.
    DEADLINE = "deadline"
    #: Context overflow with no size to shrink from.
    CANNOT_SHRINK = "cannot-shrink"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Permanent:
    """Retrying cannot cure this kind (auth, quota, moderation, …)."""

    code: ClassVar[GiveUpCode] = GiveUpCode.PERMANENT
    #: The failure's kind.
    kind: ErrorKind


@dataclass(frozen=True)
class AttemptsExhausted:
    """The retries for the kind or for the call are used up."""

    code: ClassVar[GiveUpCode] = GiveUpCode.ATTEMPTS_EXHAUSTED
    #: The failure's kind.
    kind: ErrorKind
    #: Retries already made.
    retries: int


@dataclass(frozen=True)
class BudgetExhausted:
    """The service-wide retry budget is empty: retrying now would feed a retry storm."""

    code: ClassVar[GiveUpCode] = GiveUpCode.BUDGET_EXHAUSTED


@dataclass(frozen=True)
class WaitTooLong:
    """The server asked for a longer wait than the policy's ceiling."""

    code: ClassVar[GiveUpCode] = GiveUpCode.WAIT_TOO_LONG
    #: What the server asked for, ms.
    wait_ms: int
    #: The policy's ceiling, ms.
    ceiling_ms: int


@dataclass(frozen=True)
class DeadlineExceeded:
    """Waiting would pass the call's deadline."""

    code: ClassVar[GiveUpCode] = GiveUpCode.DEADLINE
    #: When the retry would be sent, ms.
    retry_at_ms: int
    #: The deadline, ms.
    deadline_at_ms: int


@dataclass(frozen=True)
class CannotShrink:
    """Context overflow, and neither the error nor the caller gave a size to shrink from."""

    code: ClassVar[GiveUpCode] = GiveUpCode.CANNOT_SHRINK


#: Why a call gave up.
GiveUpReason = Union[Permanent, AttemptsExhausted, BudgetExhausted, WaitTooLong, DeadlineExceeded, CannotShrink]


@dataclass(frozen=True)
class Retry:
    """Send the same request again after a wait."""

    decision: ClassVar[str] = "retry"
    #: How long to wait first, ms.
    after_ms: int
    #: The number of the attempt about to be made (2 for the first retry).
    attempt: int


@dataclass(frozen=True)
class ShrinkContext:
    """Shrink the request to ``target_tokens`` (by the caller's own count), then retry."""

    decision: ClassVar[str] = "shrink-context"
    #: The request size to aim for, in tokens.
    target_tokens: int
    #: How long to wait first, ms.
    after_ms: int
    #: The number of the attempt about to be made.
    attempt: int


@dataclass(frozen=True)
class GiveUp:
    """Stop and report."""

    decision: ClassVar[str] = "give-up"
    #: Why.
    reason: GiveUpReason


#: What to do about a failed attempt.
Decision = Union[Retry, ShrinkContext, GiveUp]


class RetryBudget(Resource):
    """A service-wide retry budget (a token bucket: requests deposit, retries withdraw).

    Args:
        config: a ``BudgetConfig`` as a dict (``None`` or ``{}`` for the defaults).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.
    """

    _INTERFACE = RETRY_INTERFACE
    _RESOURCE = "budget"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "RetryBudget":
        return cls._new(plugin, "retry budget config", "[static]budget.create",
                        config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    def deposit(self, now_ms: int) -> None:
        """Records one original request (:meth:`RetryPolicy.start_call` does this too)."""
        self._call("deposit", u64("now_ms", now_ms))

    def available(self, now_ms: int) -> int:
        """Retries the budget would allow now."""
        return int(self._call("available", u64("now_ms", now_ms)))


class RetryPolicy(Resource):
    """A validated retry policy, shared by every call.

    Args:
        config: a ``RetryConfig`` as a dict (``None`` or ``{}`` for the defaults).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.
    """

    _INTERFACE = RETRY_INTERFACE
    _RESOURCE = "policy"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "RetryPolicy":
        return cls._new(plugin, "retry config", "[static]policy.create", config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    def start_call(self, now_ms: int, seed: int, budget: RetryBudget) -> "RetryCall":
        """Starts a call at ``now_ms``; ``seed`` makes its jitter reproducible. Deposits one
        request into ``budget``, which the call then keeps using."""
        if not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget, not {type(budget).__name__}")
        budget_handle = self._same_instance(budget, "the budget")
        raw = self._call("start-call", u64("now_ms", now_ms), u64("seed", seed), budget_handle)
        if raw is None or isinstance(raw, (str, int, list)):
            raise IncompatibleComponentError(f"start-call returned {raw!r}, not a resource")
        call = RetryCall._wrap(self._plugin, raw, self._epoch)
        call._policy = self
        call._budget = budget
        return call

    def decide(
        self,
        call: "RetryCall",
        failure: Classification,
        now_ms: int,
        request_tokens: Optional[int] = None,
        budget: Optional[RetryBudget] = None,
    ) -> Decision:
        """Decides what to do about a failed attempt of ``call``.

        Args:
            call: the call, from :meth:`start_call`.
            failure: the attempt's classification.
            now_ms: now, on the same clock as ``start_call``.
            request_tokens: the request's size by the caller's own count (lets a context
                overflow shrink to the limit scaled to that count).
            budget: the budget to withdraw from; default the one the call started with.
        """
        if not isinstance(call, RetryCall):
            raise TypeError(f"call must be a RetryCall, not {type(call).__name__}")
        budget = call._budget if budget is None else budget
        if not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget, not {type(budget).__name__}")
        raw = self._call(
            "decide",
            self._same_instance(call, "the call"),
            classification_record(failure),
            u64("now_ms", now_ms),
            optional_u64("request_tokens", request_tokens),
            self._same_instance(budget, "the budget"),
        )
        return _decision(raw)


class RetryCall(Resource):
    """The state of one call across its attempts; from :meth:`RetryPolicy.start_call`."""

    _INTERFACE = RETRY_INTERFACE
    _RESOURCE = "call"
    _policy: RetryPolicy
    _budget: RetryBudget

    def __init__(self) -> None:
        raise TypeError("a RetryCall comes from RetryPolicy.start_call(now_ms, seed, budget)")

    @property
    def retries(self) -> int:
        """Retries decided so far."""
        return int(self._call("retries"))

    def decide(
        self, failure: Classification, now_ms: int, request_tokens: Optional[int] = None
    ) -> Decision:
        """:meth:`RetryPolicy.decide` with this call's policy and budget."""
        return self._policy.decide(self, failure, now_ms, request_tokens)


# ---- conversions ------------------------------------------------------------------------


def _kind(raw: Any) -> ErrorKind:
    try:
        return error_kind(raw)
    except ValueError as e:
        raise IncompatibleComponentError(str(e)) from None


def _reason(raw: Any) -> GiveUpReason:
    if not isinstance(raw, wc.Variant):
        raise IncompatibleComponentError(f"give-up reason is {raw!r}")
    p = raw.payload
    if raw.tag == "permanent":
        return Permanent(_kind(p))
    if raw.tag == "attempts-exhausted":
        return AttemptsExhausted(_kind(field(p, "kind")), field(p, "retries"))
    if raw.tag == "budget-exhausted":
        return BudgetExhausted()
    if raw.tag == "wait-too-long":
        return WaitTooLong(field(p, "wait-ms"), field(p, "ceiling-ms"))
    if raw.tag == "deadline":
        return DeadlineExceeded(field(p, "retry-at-ms"), field(p, "deadline-at-ms"))
    if raw.tag == "cannot-shrink":
        return CannotShrink()
    raise IncompatibleComponentError(f"unknown give-up reason {raw.tag!r}")


def _decision(raw: Any) -> Decision:
    if not isinstance(raw, wc.Variant):
        raise IncompatibleComponentError(f"decision is {raw!r}")
    p = raw.payload
    if raw.tag == "retry":
        return Retry(field(p, "after-ms"), field(p, "attempt"))
    if raw.tag == "shrink-context":
        return ShrinkContext(field(p, "target-tokens"), field(p, "after-ms"), field(p, "attempt"))
    if raw.tag == "give-up":
        return GiveUp(_reason(p))
    raise IncompatibleComponentError(f"unknown decision {raw.tag!r}")
