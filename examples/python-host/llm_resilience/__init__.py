"""llm-resilience for Python: the policy engine's component, run in wasmtime.

Classify a failed LLM API call::

    import llm_resilience as llmr

    c = llmr.classify(status=429, headers={"retry-after-ms": "6"}, body=response_text)
    if c.kind is llmr.ErrorKind.RATE_LIMITED and c.retryable:
        sleep_ms(c.retry_after_ms or 1000)

Decide what to do about it: circuit breakers (:class:`Breaker`, :class:`BreakerSet`), a rate
limiter per chat session (:class:`RateLimiter`), retries under a retry budget
(:class:`RetryPolicy`, :class:`RetryBudget`, :class:`RetryCall`)::

    breaker = llmr.Breaker({"consecutive_failures": 5})
    admission = breaker.acquire(now_ms)
    if admission.admitted:
        ...
        breaker.record(admission.permit, llmr.Success(), now_ms)

Count tokens (:class:`TokenCounter`), trim a conversation into the model's window
(:func:`trim`, :func:`next_budget`) and watch OpenRouter credits (:class:`CreditMonitor`,
:func:`parse_key`, :func:`parse_credits`, :func:`suggest_max_tokens`)::

    counter = llmr.TokenCounter.exact(llmr.Encoding.O200K_BASE)
    trimmed = llmr.trim({"context_window": 128_000}, llmr.TrimInput(system, docs, history, latest), counter)

These are handles on resources that live inside the component: close them (``close()`` or a
``with`` block) or let Python collect them. A trap loses them (the plugin continues in a fresh
instance): take snapshots (``snapshot()``) to carry state across a trap or a restart.

The module-level :func:`classify` and :func:`version`, and every handle created without a
``plugin=``, use one shared :class:`Plugin`, created on first use from
:func:`default_component_path`; create a :class:`Plugin` yourself to choose the component file
or the limits.
"""

from __future__ import annotations

import threading
from typing import Optional

from ._resource import ConfigLike, Resource, SnapshotLike
from .breaker import (
    Admission,
    Admitted,
    Breaker,
    BreakerSet,
    Counted,
    Counts,
    Failure,
    Ignored,
    Outcome,
    Permit,
    Recorded,
    Rejected,
    Stale,
    State,
    Success,
    Transition,
)
from .classify import Classification, ErrorKind
from .context import (
    BudgetLike,
    ContextBudget,
    DropReason,
    Dropped,
    Fate,
    Kept,
    TrimInput,
    TrimReport,
    Trimmed,
    Truncated,
    next_budget,
    trim,
)
from .credits import (
    Affordable,
    AlertEvent,
    AlertKind,
    AlertState,
    CreditMonitor,
    CreditSnapshot,
    CreditsInfo,
    CreditStatus,
    KeyInfo,
    LimitReset,
    parse_credits,
    parse_key,
    suggest_max_tokens,
)
from .errors import (
    CannotShrinkError,
    ConfigError,
    ContextError,
    ContextTokensError,
    CreditsError,
    DoesNotFitError,
    LatestNotUserError,
    NotOverflowError,
    TokenError,
    FuelExhaustedError,
    MemoryLimitError,
    ArgumentError,
    ArgumentTypeError,
    ArgumentValueError,
    IncompatibleComponentError,
    InvalidKeyError,
    LimiterKeyError,
    LimitError,
    PluginError,
    PluginLoadError,
    PluginTrap,
    ResourceClosedError,
    ResourceLostError,
)
from .plugin import (
    CAPABILITIES,
    COMPONENT_ENV,
    DEFAULT_FUEL,
    DEFAULT_MEMORY_LIMIT,
    MAX_BODY_BYTES,
    BodyLike,
    HeadersLike,
    Plugin,
    default_component_path,
)
from .ratelimit import Allowed, CheckResult, Denied, RateLimiter, Verdict
from .tokens import (
    Calibration,
    Encoding,
    Message,
    MessageLike,
    Role,
    TokenCounter,
    ToolCall,
    ToolSchema,
    ToolSchemaLike,
    encoding_for_model,
)
from .retry import (
    AttemptsExhausted,
    BudgetExhausted,
    CannotShrink,
    DeadlineExceeded,
    Decision,
    GiveUp,
    GiveUpCode,
    GiveUpReason,
    Permanent,
    Retry,
    RetryBudget,
    RetryCall,
    RetryPolicy,
    ShrinkContext,
    WaitTooLong,
)

__all__ = [
    "classify",
    "version",
    "default_plugin",
    "Plugin",
    "Classification",
    "ErrorKind",
    "PluginError",
    "PluginLoadError",
    "IncompatibleComponentError",
    "PluginTrap",
    "FuelExhaustedError",
    "CAPABILITIES",
    "MemoryLimitError",
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "ResourceLostError",
    "ResourceClosedError",
    "ConfigError",
    "InvalidKeyError",
    "LimitError",
    "LimiterKeyError",
    # breaker
    "Breaker",
    "BreakerSet",
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
    # ratelimit
    "RateLimiter",
    "Verdict",
    "Allowed",
    "Denied",
    "CheckResult",
    # retry
    "RetryPolicy",
    "RetryBudget",
    "RetryCall",
    "Retry",
    "ShrinkContext",
    "GiveUp",
    "Decision",
    "GiveUpCode",
    "GiveUpReason",
    "Permanent",
    "AttemptsExhausted",
    "BudgetExhausted",
    "WaitTooLong",
    "DeadlineExceeded",
    "CannotShrink",
    # tokens
    "TokenCounter",
    "Calibration",
    "Encoding",
    "encoding_for_model",
    "Role",
    "Message",
    "ToolCall",
    "ToolSchema",
    "MessageLike",
    "ToolSchemaLike",
    "TokenError",
    # context
    "trim",
    "next_budget",
    "ContextBudget",
    "BudgetLike",
    "TrimInput",
    "Trimmed",
    "TrimReport",
    "Fate",
    "Kept",
    "Truncated",
    "Dropped",
    "DropReason",
    "ContextError",
    "DoesNotFitError",
    "LatestNotUserError",
    "ContextTokensError",
    "NotOverflowError",
    "CannotShrinkError",
    # credits
    "CreditMonitor",
    "CreditSnapshot",
    "CreditStatus",
    "AlertEvent",
    "AlertKind",
    "AlertState",
    "KeyInfo",
    "CreditsInfo",
    "LimitReset",
    "Affordable",
    "parse_key",
    "parse_credits",
    "suggest_max_tokens",
    "CreditsError",
    # plumbing
    "Resource",
    "ConfigLike",
    "SnapshotLike",
    "HeadersLike",
    "BodyLike",
    "COMPONENT_ENV",
    "DEFAULT_FUEL",
    "DEFAULT_MEMORY_LIMIT",
    "MAX_BODY_BYTES",
    "default_component_path",
]

_default: Optional[Plugin] = None
_default_lock = threading.Lock()


def default_plugin() -> Plugin:
    """The shared :class:`Plugin` behind :func:`classify`, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Plugin()
        return _default


def classify(
    status: Optional[int] = None,
    headers: Optional[HeadersLike] = None,
    body: Optional[BodyLike] = b"",
    transport: Optional[str] = None,
    wall_clock_ms: Optional[int] = None,
) -> Classification:
    """Classifies one failed call with the shared plugin; see :meth:`Plugin.classify`."""
    return default_plugin().classify(
        status=status,
        headers=headers,
        body=body,
        transport=transport,
        wall_clock_ms=wall_clock_ms,
    )


def version() -> str:
    """The version of the library inside the shared plugin's component."""
    return default_plugin().version()
