"""Token counting: :class:`TokenCounter` (exact for OpenAI's encodings, or a proven upper bound)
and :class:`Calibration` (per-model ratios learned from the provider's reported usage); the chat
vocabulary they count: :class:`Message`, :class:`ToolCall`, :class:`ToolSchema`, :class:`Role`.

They wrap ``interface tokens`` of the component::

    counter = llmr.TokenCounter.exact(llmr.Encoding.O200K_BASE)   # create once, keep it
    n = counter.count_messages([llmr.Message("user", "Halo kak 🙏🏽")])

``chars / 4`` undercounts Indonesian chat by a third and emoji by more: never use it as a budget
guard. :meth:`TokenCounter.upper_bound` never counts fewer tokens than either encoding and needs
no tables.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field as dc_field
from typing import Any, Optional, Union

from wasmtime import component as wc

from ._resource import (
    ConfigLike,
    Resource,
    SnapshotLike,
    _plugin,
    config_json,
    field,
    snapshot_json,
    text,
    u64,
)
from .errors import ConfigError, IncompatibleComponentError, TokenError
from .plugin import Plugin

__all__ = [
    "Role",
    "ToolCall",
    "Message",
    "ToolSchema",
    "MessageLike",
    "ToolSchemaLike",
    "Encoding",
    "TokenCounter",
    "Calibration",
    "encoding_for_model",
    "TOKENS_INTERFACE",
    "EXACT_COUNTER_FUEL",
]

#: The interface these classes call.
TOKENS_INTERFACE = "llm:resilience/tokens@0.1.0"

#: The fuel :meth:`TokenCounter.exact` is given at least, whatever the plugin's per-call fuel:
#: decoding the ``o200k-base`` tables takes about 1.2·10⁹ instructions (``cl100k-base`` about
#: 0.6·10⁹), above the default per-call budget meant for classifying a body.
EXACT_COUNTER_FUEL = 5_000_000_000


class Role(str, enum.Enum):
    """Who wrote a message; the values are the WIT's (and the chat API's) names."""

    #: Instructions from the application.
    SYSTEM = "system"
    #: The customer.
    USER = "user"
    #: The model.
    ASSISTANT = "assistant"
    #: A tool's result, answering one of the assistant's tool calls.
    TOOL = "tool"

    def __str__(self) -> str:
        return self.value


class Encoding(str, enum.Enum):
    """A byte-pair encoding of OpenAI's models; the values are the WIT's names."""

    #: ``o200k_base``: gpt-4o, gpt-4o-mini, gpt-4.1, gpt-5, o1, o3, o4-mini.
    O200K_BASE = "o200k-base"
    #: ``cl100k_base``: gpt-4, gpt-4-turbo, gpt-3.5-turbo.
    CL100K_BASE = "cl100k-base"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ToolCall:
    """A tool call made by the assistant."""

    #: The call's id; the tool result names it in ``tool_call_id``.
    id: str
    #: The function called.
    name: str
    #: The arguments, as the JSON text the model produced.
    arguments: str


@dataclass(frozen=True)
class Message:
    """One chat message, as the OpenAI-compatible chat API carries it.

    Anywhere a message is taken, a mapping in the chat API's shape works too: ``{"role",
    "content", "name", "tool_calls", "tool_call_id"}``, a tool call either ``{"id", "name",
    "arguments"}`` or the API's ``{"id", "function": {"name", "arguments"}}``.
    """

    #: Who wrote it.
    role: Role
    #: The text (may be empty for an assistant message that only calls tools).
    content: str = ""
    #: An optional participant name.
    name: Optional[str] = None
    #: Tool calls made by an assistant message.
    tool_calls: tuple[ToolCall, ...] = dc_field(default_factory=tuple)
    #: For a tool message: the id of the call it answers.
    tool_call_id: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", _role(self.role))
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    def to_dict(self) -> dict[str, Any]:
        """The message as the chat API's JSON (``tool_calls`` as ``{id, name, arguments}``;
        absent fields left out)."""
        out: dict[str, Any] = {"role": self.role.value, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True)
class ToolSchema:
    """A tool (function) the model may call, as sent in the request's ``tools``."""

    #: The function name.
    name: str
    #: Its description.
    description: str = ""
    #: Its JSON-schema parameters, as JSON text.
    parameters: str = ""


#: A message: a :class:`Message` or a mapping in the chat API's shape.
MessageLike = Union[Message, Mapping[str, Any]]
#: A tool schema: a :class:`ToolSchema` or a mapping ``{"name", "description", "parameters"}``
#: (``parameters`` as JSON text or as a mapping, then serialised).
ToolSchemaLike = Union[ToolSchema, Mapping[str, Any]]


def encoding_for_model(model: str, *, plugin: Optional[Plugin] = None) -> Encoding:
    """The encoding an OpenAI model id uses (with or without an ``openai/`` prefix)."""
    raw = _plugin(plugin)._call_fn(TOKENS_INTERFACE, "encoding-for-model", text("model", model))
    return _encoding(raw)


class TokenCounter(Resource):
    """A token counter living in a :class:`Plugin`'s component instance.

    Create it with :meth:`exact` or :meth:`upper_bound` (not the constructor). An exact counter
    decodes its encoding's tables inside the component (slow, megabytes of memory): create one
    and keep it.
    """

    _INTERFACE = TOKENS_INTERFACE
    _RESOURCE = "counter"

    def __init__(self) -> None:
        raise TypeError("use TokenCounter.exact(encoding) or TokenCounter.upper_bound()")

    @classmethod
    def exact(
        cls, encoding: Union[Encoding, str] = Encoding.O200K_BASE, *, plugin: Optional[Plugin] = None
    ) -> "TokenCounter":
        """An exact counter for ``encoding`` with OpenAI's chat overhead.

        Building it decodes the tables (about 0.2 s for ``o200k-base``); this one call gets at
        least :data:`EXACT_COUNTER_FUEL` fuel.

        Raises:
            ConfigError: the component's built-in tables are corrupt (never for a good build).
        """
        enc = _encoding_arg(encoding)
        plugin = _plugin(plugin)
        raw, epoch = plugin._create(
            cls._INTERFACE, "[static]counter.exact", enc.value, min_fuel=EXACT_COUNTER_FUEL
        )
        if isinstance(raw, str):
            raise ConfigError("exact token counter", [raw])
        if isinstance(raw, wc.Variant):  # a tagged result, should wasmtime-py ever tag it
            if raw.tag == "err":
                raise ConfigError("exact token counter", [str(raw.payload)])
            raw = raw.payload
        if raw is None or isinstance(raw, (bytes, int, list)):
            raise IncompatibleComponentError(f"counter.exact returned {raw!r}, not a resource")
        return cls._wrap(plugin, raw, epoch)

    @classmethod
    def upper_bound(cls, *, plugin: Optional[Plugin] = None) -> "TokenCounter":
        """A counter that never counts fewer tokens than ``o200k-base`` or ``cl100k-base``
        would, for texts and for whole requests. Cheap: no tables."""
        plugin = _plugin(plugin)
        raw, epoch = plugin._create(cls._INTERFACE, "[static]counter.upper-bound")
        if raw is None or isinstance(raw, (str, bytes, int, list)):
            raise IncompatibleComponentError(f"counter.upper-bound returned {raw!r}, not a resource")
        return cls._wrap(plugin, raw, epoch)

    @property
    def encoding(self) -> Optional[Encoding]:
        """The encoding of an exact counter; ``None`` for the upper bound."""
        raw = self._call("encoding")
        return None if raw is None else _encoding(raw)

    def count_text(self, text_: str) -> int:
        """Tokens in a text.

        Raises:
            TokenError: the text is longer than the 4 MiB that are tokenized.
        """
        return _count(self._call("count-text", text("text", text_)))

    def count_messages(
        self, messages: Iterable[MessageLike], tools: Iterable[ToolSchemaLike] = ()
    ) -> int:
        """Tokens of a whole request: every message with its chat overhead, the tool schemas and
        the reply priming.

        Raises:
            TokenError: the request's texts together are longer than the 4 MiB tokenized.
        """
        return _count(self._call("count-messages", message_records(messages), tool_records(tools)))


class Calibration(Resource):
    """Per-model ratios of a provider's token count to ours, learned from reported usage.

    Ratios are parts per million (1 000 000 = 1.0).

    Args:
        config: a ``CalibrationConfig`` as a dict (``None`` or ``{}`` for the defaults).
        plugin: the plugin to create it in (default: the shared one).

    Raises:
        ConfigError: the component refused the config; ``problems`` lists why.
    """

    _INTERFACE = TOKENS_INTERFACE
    _RESOURCE = "calibration"
    #: Its own instance: a trap while counting tokens must not lose learned ratios.
    _SLOT = "calibration"

    def __new__(cls, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> "Calibration":
        return cls._new(plugin, "calibration config", "[static]calibration.create",
                        config_json("config", config))

    def __init__(self, config: ConfigLike = None, *, plugin: Optional[Plugin] = None) -> None:
        pass

    @classmethod
    def restore(cls, snapshot: SnapshotLike, *, plugin: Optional[Plugin] = None) -> "Calibration":
        """A calibration from a :meth:`snapshot`.

        Raises:
            ConfigError: the snapshot is corrupt or inconsistent.
        """
        return cls._new(plugin, "calibration snapshot", "[static]calibration.restore",
                        snapshot_json(snapshot))

    def ratio(self, model: str) -> int:
        """The ratio used for ``model`` (ppm): learned, or its family's seed."""
        return int(self._call("ratio", text("model", model)))

    def adjust(self, model: str, our_count: int) -> int:
        """Our count for ``model`` turned into the provider's expected count (rounded up)."""
        return int(self._call("adjust", text("model", model), u64("our_count", our_count)))

    def observe(self, model: str, our_count: int, reported: int) -> Optional[int]:
        """Folds in one call: our count of the request and the provider's
        ``usage.prompt_tokens``. The model's new ratio, or ``None`` when ignored."""
        raw = self._call("observe", text("model", model), u64("our_count", our_count),
                         u64("reported", reported))
        return None if raw is None else int(raw)

    def forget(self, model: str) -> bool:
        """Forgets ``model``; ``True`` if it was remembered."""
        return bool(self._call("forget", text("model", model)))

    def __len__(self) -> int:
        """Models remembered."""
        return int(self._call("len"))

    def __bool__(self) -> bool:
        return True

    def snapshot(self) -> str:
        """The whole state as JSON text, for :meth:`restore` after a restart."""
        raw = self._call("snapshot")
        if not isinstance(raw, str):
            raise IncompatibleComponentError(f"snapshot() returned {type(raw).__name__}, not str")
        return raw


# ---- conversions ------------------------------------------------------------------------


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValueError("unknown role: a role is system, user, assistant or tool") from None


def _encoding(raw: Any) -> Encoding:
    try:
        return Encoding(raw)
    except ValueError:
        raise IncompatibleComponentError(f"unknown encoding {raw!r}") from None


def _encoding_arg(value: Any) -> Encoding:
    try:
        return Encoding(value)
    except ValueError:
        raise ValueError("unknown encoding: o200k-base or cl100k-base") from None


def _count(raw: Any) -> int:
    """The ok value of ``result<u64, token-error>`` (tagged: both sides are integers)."""
    if isinstance(raw, wc.Variant) and raw.tag in ("ok", "err"):
        if raw.tag == "ok":
            return int(raw.payload)
        raw = raw.payload
        if isinstance(raw, wc.Variant):  # token-error tagged
            raw = raw.payload
        raise TokenError(int(raw))
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    raise IncompatibleComponentError(f"a count is {raw!r}")


def _optional_text(what: str, value: Any) -> Optional[str]:
    return None if value is None else text(what, value)


def _tool_call_record(call: Any) -> Any:
    if isinstance(call, ToolCall):
        cid, name, args = call.id, call.name, call.arguments
    elif isinstance(call, Mapping):
        fn = call.get("function")
        src = fn if isinstance(fn, Mapping) else call
        cid, name, args = call.get("id"), src.get("name"), src.get("arguments", "")
    else:
        raise TypeError(f"a tool call must be a ToolCall or a mapping, not {type(call).__name__}")
    record = wc.Record()
    record.id = text("tool call id", cid)
    record.name = text("tool call name", name)
    record.arguments = text("tool call arguments", args)
    return record


def message_record(message: MessageLike) -> Any:
    """A :class:`Message` (or a chat-API mapping) as the WIT record ``message``."""
    if isinstance(message, Message):
        role, content, name = message.role, message.content, message.name
        calls: Iterable[Any] = message.tool_calls
        call_id = message.tool_call_id
    elif isinstance(message, Mapping):
        role = _role(message.get("role"))
        content = message.get("content")
        content = "" if content is None else content
        name = message.get("name")
        calls = message.get("tool_calls") or ()
        call_id = message.get("tool_call_id")
    else:
        raise TypeError(f"a message must be a Message or a mapping, not {type(message).__name__}")
    record = wc.Record()
    record.role = _role(role).value
    record.content = text("content", content)
    record.name = _optional_text("name", name)
    setattr(record, "tool-calls", [_tool_call_record(c) for c in calls])
    setattr(record, "tool-call-id", _optional_text("tool_call_id", call_id))
    return record


def message_records(messages: Iterable[MessageLike]) -> list[Any]:
    """Messages as WIT records."""
    if isinstance(messages, (str, bytes, Mapping, Message)):
        raise TypeError("messages must be a list of messages")
    return [message_record(m) for m in messages]


def tool_records(tools: Iterable[ToolSchemaLike]) -> list[Any]:
    """Tool schemas as WIT records."""
    if isinstance(tools, (str, bytes, Mapping, ToolSchema)):
        raise TypeError("tools must be a list of tool schemas")
    out = []
    for tool in tools:
        if isinstance(tool, ToolSchema):
            name, description, parameters = tool.name, tool.description, tool.parameters
        elif isinstance(tool, Mapping):
            name = tool.get("name")
            description = tool.get("description") or ""
            parameters = tool.get("parameters") or ""
            if isinstance(parameters, Mapping):
                import json

                parameters = json.dumps(dict(parameters))
        else:
            raise TypeError(f"a tool must be a ToolSchema or a mapping, not {type(tool).__name__}")
        record = wc.Record()
        record.name = text("tool name", name)
        record.description = text("tool description", description)
        record.parameters = text("tool parameters", parameters)
        out.append(record)
    return out


def message_from_record(raw: Any) -> Message:
    """A WIT ``message`` record as a :class:`Message`."""
    calls = tuple(
        ToolCall(field(c, "id"), field(c, "name"), field(c, "arguments"))
        for c in field(raw, "tool-calls")
    )
    try:
        role = Role(field(raw, "role"))
    except ValueError:
        raise IncompatibleComponentError(f"unknown role {field(raw, 'role')!r}") from None
    return Message(role, field(raw, "content"), field(raw, "name"), calls, field(raw, "tool-call-id"))
