"""Context trimming: :func:`trim` fits a conversation into the model's window by the counter's
own measure, without breaking it; :func:`next_budget` turns a context overflow into the next
budget.

They wrap ``interface context`` of the component; the rules are the core's (``context`` module
docs)::

    counter = llmr.TokenCounter.exact("o200k-base")
    budget = llmr.ContextBudget(context_window=128_000, reserved_output_tokens=1_024)
    trimmed = llmr.trim(budget, llmr.TrimInput(system, documents, history, latest), counter)
    send(trimmed.messages)       # [system, document…, history…, latest]
    trimmed.report.tokens_after  # ≤ trimmed.report.limit_tokens, always

The system prompt and the latest user message are always sent whole (else
:class:`DoesNotFitError`); documents shrink before history is dropped; history is kept newest
first as whole exchanges starting with a user turn; text is cut only between grapheme clusters,
with the marker ``…[truncated]``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field as dc_field, fields
from typing import Any, ClassVar, Optional, Union

from wasmtime import component as wc

from ._args import integer
from ._resource import _plugin, classification_record, error_kind, field, optional_u64
from .classify import Classification
from .errors import (
    ArgumentError,
    CannotShrinkError,
    ConfigError,
    ContextTokensError,
    DoesNotFitError,
    IncompatibleComponentError,
    LatestNotUserError,
    NotOverflowError,
)
from .plugin import Plugin
from .retry import RetryPolicy
from .tokens import (
    Message,
    MessageLike,
    Role,
    TokenCounter,
    ToolSchemaLike,
    message_from_record,
    message_record,
    message_records,
    tool_records,
)

__all__ = [
    "ContextBudget",
    "BudgetLike",
    "TrimInput",
    "DropReason",
    "Kept",
    "Truncated",
    "Dropped",
    "Fate",
    "TrimReport",
    "Trimmed",
    "trim",
    "next_budget",
    "CONTEXT_INTERFACE",
]

#: The interface these functions call.
CONTEXT_INTERFACE = "llm:resilience/context@0.1.0"

#: Budget fields that are ``u64`` / ``u32`` with a core default (``None``: take it).
_DEFAULTED = ("context_window", "reserved_output_tokens", "safety_margin_tokens", "min_document_chars")
#: Every budget field, in the WIT record's order (problems are listed in it).
_FIELDS = ("context_window", "reserved_output_tokens", "safety_margin_tokens", "max_history_messages",
           "max_document_chars", "max_message_chars", "min_document_chars")
#: Budget fields that are ``u64`` (the others are ``u32``).
_U64_FIELDS = ("context_window", "reserved_output_tokens", "safety_margin_tokens")
#: Budget fields that are optional caps (``None``: no cap).
_CAPS = ("max_history_messages", "max_document_chars", "max_message_chars")


@dataclass(frozen=True)
class ContextBudget:
    """A trimming budget: ``context_window − reserved_output_tokens − safety_margin_tokens``
    tokens for the whole request, plus optional caps.

    A field left ``None`` among ``context_window``, ``reserved_output_tokens``,
    ``safety_margin_tokens`` and ``min_document_chars`` takes the core's default (a 128 000-token
    window, 1 024 reserved, a 256-token margin, documents cut down to 500 characters); a cap left
    ``None`` is no cap. The component validates the budget on use (:class:`ConfigError`, every
    problem listed). A mapping with these keys (the core's ``ContextConfig`` JSON) works
    wherever a budget is taken.
    """

    #: The model's context window, tokens (prompt and completion together). > 0.
    context_window: Optional[int] = None
    #: Tokens kept free for the reply (the request's ``max_tokens``).
    reserved_output_tokens: Optional[int] = None
    #: Tokens kept free for counting differences with the provider.
    safety_margin_tokens: Optional[int] = None
    #: At most this many history messages are kept (newest first).
    max_history_messages: Optional[int] = None
    #: Documents longer than this many characters are cut to it (plus the marker).
    max_document_chars: Optional[int] = None
    #: History messages longer than this many characters are cut to it.
    max_message_chars: Optional[int] = None
    #: Documents are cut down to this many characters before any history is dropped.
    min_document_chars: Optional[int] = None

    @classmethod
    def default(cls, *, plugin: Optional[Plugin] = None) -> "ContextBudget":
        """The core's default budget, every field filled in."""
        return _budget_from_record(_plugin(plugin)._call_fn(CONTEXT_INTERFACE, "default-budget"))

    def limit_tokens(self, *, plugin: Optional[Plugin] = None) -> int:
        """Tokens the whole request may take under this budget.

        Raises:
            ConfigError: the budget is invalid; ``problems`` lists why.
        """
        plugin = _plugin(plugin)
        raw = plugin._call_fn(CONTEXT_INTERFACE, "limit-tokens", budget_record(plugin, self))
        if isinstance(raw, wc.Variant) and raw.tag in ("ok", "err"):
            raw = raw.payload if raw.tag == "ok" else list(raw.payload)
        if isinstance(raw, list):
            raise ConfigError("context budget", [str(p) for p in raw])
        if not isinstance(raw, int):
            raise IncompatibleComponentError(f"limit-tokens returned {raw!r}")
        return raw


#: A budget: a :class:`ContextBudget` or a mapping of its fields (``ContextConfig`` JSON).
BudgetLike = Union[ContextBudget, Mapping[str, Any]]


@dataclass(frozen=True)
class TrimInput:
    """What to trim. Nothing of it is changed."""

    #: The system prompt; always sent first, whole.
    system: str
    #: Knowledge-base documents, best-ranked first; each kept one is its own system message.
    documents: tuple[str, ...] = ()
    #: The conversation so far, oldest first (without the latest user message).
    history: tuple[MessageLike, ...] = ()
    #: The customer's latest message (user role); always sent last, whole. A ``str`` is a user
    #: message with that text.
    latest: Union[MessageLike, str] = ""
    #: The tool schemas sent with the request (they count against the budget).
    tools: tuple[ToolSchemaLike, ...] = dc_field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("documents", "history", "tools"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes, Mapping)):
                raise TypeError(f"{name} must be a list, not {type(value).__name__}")
            object.__setattr__(self, name, tuple(value))


class DropReason(str, enum.Enum):
    """Why a document or history message was not sent; the values are the WIT's names."""

    #: It did not fit in the token budget.
    BUDGET = "budget"
    #: More history messages than ``max_history_messages``.
    MAX_MESSAGES = "max-messages"
    #: A tool result that no kept assistant tool call asks for.
    ORPHAN_TOOL_RESULT = "orphan-tool-result"
    #: An assistant tool call (with its results) whose results are not all in the history.
    UNANSWERED_TOOL_CALL = "unanswered-tool-call"
    #: Before the first kept user message (the kept history starts with a user turn).
    BEFORE_FIRST_USER_TURN = "before-first-user-turn"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Kept:
    """Sent unchanged."""

    #: Always ``"kept"``.
    fate: ClassVar[str] = "kept"
    #: Always ``True``.
    sent: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return {"fate": self.fate}


@dataclass(frozen=True)
class Truncated:
    """Sent cut: a prefix of ``chars_after`` of its ``chars_before`` characters, then the
    marker."""

    #: Always ``"truncated"``.
    fate: ClassVar[str] = "truncated"
    #: Always ``True``.
    sent: ClassVar[bool] = True
    #: Characters (Unicode scalar values) of the original text.
    chars_before: int
    #: Characters of the prefix sent (the marker not counted).
    chars_after: int

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return {"fate": self.fate, "chars_before": self.chars_before, "chars_after": self.chars_after}


@dataclass(frozen=True)
class Dropped:
    """Not sent."""

    #: Always ``"dropped"``.
    fate: ClassVar[str] = "dropped"
    #: Always ``False``.
    sent: ClassVar[bool] = False
    #: Why.
    reason: DropReason

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON."""
        return {"fate": self.fate, "reason": self.reason.value}


#: What happened to one document or history message.
Fate = Union[Kept, Truncated, Dropped]


@dataclass(frozen=True)
class TrimReport:
    """What :func:`trim` did."""

    #: The untrimmed request, counted; ``None`` when larger than the counter accepts.
    tokens_before: Optional[int]
    #: The request returned, counted: always ≤ ``limit_tokens``.
    tokens_after: int
    #: The budget's limit.
    limit_tokens: int
    #: One entry per input document, in input order.
    documents: tuple[Fate, ...]
    #: One entry per input history message, in input order.
    history: tuple[Fate, ...]

    def tally(self) -> tuple[int, int, int]:
        """(kept whole, truncated, dropped) over documents and history together."""
        every = self.documents + self.history
        return (
            sum(isinstance(f, Kept) for f in every),
            sum(isinstance(f, Truncated) for f in every),
            sum(isinstance(f, Dropped) for f in every),
        )

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON (``TrimReport``)."""
        return {
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "limit_tokens": self.limit_tokens,
            "documents": [f.to_dict() for f in self.documents],
            "history": [f.to_dict() for f in self.history],
        }


@dataclass(frozen=True)
class Trimmed:
    """The request to send and what was done to get it."""

    #: ``[system, document…, history…, latest]``.
    messages: tuple[Message, ...]
    #: What was kept, cut and dropped, and the token counts.
    report: TrimReport

    def to_dict(self) -> dict[str, Any]:
        """As the core's JSON (``Trimmed``): messages in the chat API's shape."""
        return {"messages": [m.to_dict() for m in self.messages], "report": self.report.to_dict()}


def trim(
    budget: BudgetLike,
    input: Union[TrimInput, Mapping[str, Any]],
    counter: TokenCounter,
) -> Trimmed:
    """Trims ``input`` into ``budget``, counting with ``counter`` (in ``counter``'s plugin).

    Raises:
        ConfigError: the budget is invalid; ``problems`` lists why.
        DoesNotFitError: the system prompt and the latest message alone do not fit.
        LatestNotUserError: the latest message does not have the user role.
        ContextTokensError: the counter refused a text (over 4 MiB).
    """
    if not isinstance(counter, TokenCounter):
        raise TypeError(f"counter must be a TokenCounter, not {type(counter).__name__}")
    plugin = counter.plugin
    handle = counter._live_handle()
    args = (budget_record(plugin, budget), _input_record(input), handle)
    raw = plugin._call_in(counter._epoch, CONTEXT_INTERFACE, "trim", *args)
    return _trimmed(_ok(raw, "budget"))


def next_budget(
    failure: Classification,
    current: BudgetLike,
    request_tokens: Optional[int],
    policy: RetryPolicy,
) -> ContextBudget:
    """The next budget after the provider rejected a request of ``request_tokens`` (the trimmed
    request's ``tokens_after``) with a context overflow. Its limit equals the ``target_tokens``
    that ``policy`` decides in :class:`~llm_resilience.ShrinkContext` for the same failure.

    Raises:
        NotOverflowError: ``failure`` is not a context overflow.
        CannotShrinkError: no size to shrink from, or the target leaves no room.
        ConfigError: ``current`` is invalid.
    """
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"policy must be a RetryPolicy, not {type(policy).__name__}")
    plugin = policy.plugin
    handle = policy._live_handle()
    args = (
        classification_record(failure),
        budget_record(plugin, current),
        optional_u64("request_tokens", request_tokens),
        handle,
    )
    raw = plugin._call_in(policy._epoch, CONTEXT_INTERFACE, "next-budget", *args)
    return _budget_from_record(_ok(raw, "current budget"))


# ---- conversions ------------------------------------------------------------------------


def budget_record(plugin: Plugin, budget: BudgetLike) -> Any:
    """A budget as the WIT record, its defaulted fields filled from ``default-budget``."""
    if isinstance(budget, ContextBudget):
        values = {f.name: getattr(budget, f.name) for f in fields(ContextBudget)}
    elif isinstance(budget, Mapping):
        unknown = set(budget) - set(_DEFAULTED) - set(_CAPS)
        if unknown:
            # The names are not echoed: a mistaken mapping can hold anything, a key included.
            allowed = ", ".join(_DEFAULTED + _CAPS)
            raise ConfigError("context budget", [f"{len(unknown)} unknown field(s); known: {allowed}"])
        values = dict(budget)
    else:
        raise TypeError(f"budget must be a ContextBudget or a mapping, not {type(budget).__name__}")
    defaults = None
    if any(values.get(k) is None for k in _DEFAULTED):
        defaults = plugin._call_fn(CONTEXT_INTERFACE, "default-budget")
    # A field of the wrong type or out of range is refused as the core refuses it in the
    # `ContextConfig` JSON the C ABI takes: one ConfigError listing every problem.
    record = wc.Record()
    problems = []
    for name in _FIELDS:
        value = values.get(name)
        if value is None:
            value = None if name in _CAPS else field(defaults, name.replace("_", "-"))
        if value is not None:
            wit_type = "u64" if name in _U64_FIELDS else "u32"
            try:
                value = integer(name, wit_type, value)
            except ArgumentError as e:
                problems.append(f"{name} must be an integer in {e.limit} (got {e.found})")
        setattr(record, name.replace("_", "-"), value)
    if problems:
        raise ConfigError("context budget", problems)
    return record


def _budget_from_record(raw: Any) -> ContextBudget:
    return ContextBudget(**{f.name: field(raw, f.name.replace("_", "-")) for f in fields(ContextBudget)})


def _input_record(value: Union[TrimInput, Mapping[str, Any]]) -> Any:
    if isinstance(value, Mapping):
        value = TrimInput(**value)
    if not isinstance(value, TrimInput):
        raise TypeError(f"input must be a TrimInput or a mapping, not {type(value).__name__}")
    latest = value.latest
    if isinstance(latest, str):
        latest = Message(Role.USER, latest)
    record = wc.Record()
    if not isinstance(value.system, str):
        raise TypeError(f"system must be a str, not {type(value.system).__name__}")
    record.system = value.system
    for d in value.documents:
        if not isinstance(d, str):
            raise TypeError(f"each document must be a str, not {type(d).__name__}")
    record.documents = list(value.documents)
    record.history = message_records(value.history)
    record.latest = message_record(latest)
    record.tools = tool_records(value.tools)
    return record


def _ok(raw: Any, what: str) -> Any:
    """The ok value of ``result<T, context-error>``; raises the typed error."""
    if isinstance(raw, wc.Variant) and raw.tag in ("ok", "err"):
        if raw.tag == "ok":
            return raw.payload
        raw = raw.payload
    if not isinstance(raw, wc.Variant):
        return raw
    tag, p = raw.tag, raw.payload
    if tag == "invalid-budget":
        raise ConfigError(f"context {what}", [str(x) for x in p])
    if tag == "does-not-fit":
        raise DoesNotFitError(field(p, "required-tokens"), field(p, "limit-tokens"))
    if tag == "latest-not-user":
        raise LatestNotUserError(Role(p))
    if tag == "tokens":
        raise ContextTokensError(str(p))
    if tag == "not-overflow":
        raise NotOverflowError(error_kind(p))
    if tag == "cannot-shrink":
        raise CannotShrinkError()
    raise IncompatibleComponentError(f"unknown context error {tag!r}")


def _fate(raw: Any) -> Fate:
    # `fate`'s cases carry different payload types, so wasmtime-py may hand it back untagged:
    # None (kept), a record (truncated), a string (dropped's reason).
    if isinstance(raw, wc.Variant):
        tag, p = raw.tag, raw.payload
    elif raw is None:
        tag, p = "kept", None
    elif isinstance(raw, str):
        tag, p = "dropped", raw
    else:
        tag, p = "truncated", raw
    if tag == "kept":
        return Kept()
    if tag == "truncated":
        return Truncated(field(p, "chars-before"), field(p, "chars-after"))
    if tag == "dropped":
        try:
            return Dropped(DropReason(p))
        except ValueError:
            raise IncompatibleComponentError(f"unknown drop reason {p!r}") from None
    raise IncompatibleComponentError(f"unknown fate {tag!r}")


def _trimmed(raw: Any) -> Trimmed:
    r = field(raw, "report")
    report = TrimReport(
        tokens_before=field(r, "tokens-before"),
        tokens_after=field(r, "tokens-after"),
        limit_tokens=field(r, "limit-tokens"),
        documents=tuple(_fate(f) for f in field(r, "documents")),
        history=tuple(_fate(f) for f in field(r, "history")),
    )
    return Trimmed(tuple(message_from_record(m) for m in field(raw, "messages")), report)
