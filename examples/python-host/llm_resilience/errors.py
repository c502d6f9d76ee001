"""Errors raised by the plugin host.

Everything that goes wrong *inside* the component, or while loading it, is a :class:`PluginError`
(a trap, a handle lost to a trap; :class:`FuelExhaustedError` and :class:`MemoryLimitError` name
the limit that stopped the call). Wrong argument types, out-of-range values and strings that are
not valid Unicode are an :class:`ArgumentError` (an :class:`ArgumentTypeError`, which is a
``TypeError``, or an :class:`ArgumentValueError`, which is a ``ValueError``), raised before the
component is entered: the instance and its handles are untouched. What the
component refuses as the caller's mistake is a ``ValueError`` too, typed: :class:`ConfigError`
(a config or snapshot, with every problem), :class:`InvalidKeyError` (also a ``KeyError``) and
:class:`LimitError`.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "PluginError",
    "PluginLoadError",
    "PluginTrap",
    "FuelExhaustedError",
    "MemoryLimitError",
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "IncompatibleComponentError",
    "ResourceLostError",
    "ResourceClosedError",
    "ConfigError",
    "InvalidKeyError",
    "LimitError",
    "LimiterKeyError",
    "TokenError",
    "ContextError",
    "DoesNotFitError",
    "LatestNotUserError",
    "ContextTokensError",
    "NotOverflowError",
    "CannotShrinkError",
    "CreditsError",
]


class PluginError(Exception):
    """Base class of every error that comes from the component or its loading."""


class PluginLoadError(PluginError):
    """The component could not be found, read, compiled or instantiated.

    Instantiation fails, for example, when ``memory_limit`` is below the memory the component
    needs just to start.
    """


class IncompatibleComponentError(PluginLoadError):
    """The component does not have the exports (or the types) this host was written for."""


class PluginTrap(PluginError):
    """The component trapped during a call.

    A trap ends the call and leaves the component instance unusable; the :class:`Plugin` then
    replaces the instance before the next call, so one bad call never breaks the ones after it.
    A ``memory_limit`` that is too small for the input shows up as a trap: the component cannot
    grow its memory and aborts.

    Attributes:
        detail: wasmtime's description of the trap (its cause and wasm backtrace).
    """

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class FuelExhaustedError(PluginTrap):
    """The call used up its fuel (its budget of WebAssembly instructions) and was stopped.

    Attributes:
        limit: ``"fuel"``, the :class:`~llm_resilience.Plugin` argument that sets it.
        value: the fuel each call gets.
    """

    def __init__(self, message: str, detail: str, *, limit: str = "fuel", value: Optional[int] = None) -> None:
        super().__init__(message, detail)
        self.limit = limit
        self.value = value


class MemoryLimitError(PluginTrap):
    """The call needed more linear memory than the plugin's ``memory_limit`` allows: the
    component could not grow its memory and aborted.

    Attributes:
        limit: ``"memory_limit"``, the :class:`~llm_resilience.Plugin` argument that sets it.
        value: the limit in bytes.
    """

    def __init__(self, message: str, detail: str, *, limit: str = "memory_limit", value: Optional[int] = None) -> None:
        super().__init__(message, detail)
        self.limit = limit
        self.value = value


class ArgumentError(Exception):
    """An argument that cannot be passed to the component, found before it was entered.

    Raised as :class:`ArgumentTypeError` (the wrong type; also a ``TypeError``) or
    :class:`ArgumentValueError` (out of range, or a ``str`` with a lone surrogate, which has no
    UTF-8 encoding; also a ``ValueError``). The component instance and every handle in it are
    untouched.

    Attributes:
        code: ``"invalid-argument"``, or ``"invalid-utf8"`` for a lone surrogate (the C ABI's
            ``LLMR_INVALID_UTF8``).
        argument: the argument's name (a dotted path into records and lists).
        expected: what it must be.
        limit: the range of an integer type (``"0..18446744073709551615"``), else ``None``.
    """

    def __init__(
        self,
        argument: str,
        expected: str,
        found: str,
        *,
        code: str = "invalid-argument",
        limit: Optional[str] = None,
    ) -> None:
        within = f" in {limit}" if limit else ""
        super().__init__(f"{argument} must be {expected}{within}, not {found}")
        self.code = code
        self.argument = argument
        self.expected = expected
        self.limit = limit
        self.found = found


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (see :class:`ArgumentError`)."""


class ArgumentValueError(ArgumentError, ValueError):
    """An argument of the right type with a value out of range, or text with a lone surrogate
    (see :class:`ArgumentError`)."""


class ResourceLostError(PluginError):
    """A breaker, limiter or retry handle belonged to a component instance that trapped.

    A trap ends the instance and everything living in it: every breaker, breaker set, limiter,
    retry policy, budget and call created in that instance is gone, and the :class:`Plugin`
    continues in a fresh instance. Using such a handle raises this error (every time, never a
    wrong answer). To carry state across a trap (or a restart), take snapshots (``snapshot()``) and
    ``restore()`` from the last one.
    """


class ResourceClosedError(ValueError):
    """The handle was closed (``close()`` or the end of its ``with`` block) and cannot be used."""


class ConfigError(ValueError):
    """The component refused a config (or a snapshot): every problem it found is listed.

    Attributes:
        problems: one message per rejected field (or the JSON parser's message), as the
            component reported them.
    """

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


class InvalidKeyError(KeyError, ValueError):
    """A key (a breaker set's model or provider, a limiter's session) was refused.

    Attributes:
        code: ``"empty-key"`` or ``"key-too-long"`` (longer than 256 bytes of UTF-8).
        key: the refused key.
    """

    def __init__(self, code: str, key: str) -> None:
        super().__init__(code, key)
        self.code = code
        self.key = key

    def __str__(self) -> str:
        shown = key if len(key := self.key) <= 40 else key[:40] + "…"
        return f"{self.code}: {shown!r} ({len(self.key.encode('utf-8'))} bytes)"


class LimitError(ValueError):
    """A rate-limit check that cannot be answered.

    Attributes:
        code: ``"zero-units"`` (zero units asked for), ``"exceeds-burst"`` (more units than the
            burst: no wait would ever allow them), or, for a bad key, ``"empty-key"`` /
            ``"key-too-long"`` (then the error is also an :class:`InvalidKeyError`).
    """

    def __init__(self, code: str, message: Optional[str] = None) -> None:
        super().__init__(message or code)
        self.code = code


class LimiterKeyError(InvalidKeyError, LimitError):
    """A limiter refused a key: both an :class:`InvalidKeyError` and a :class:`LimitError`."""

    def __init__(self, code: str, key: str) -> None:
        InvalidKeyError.__init__(self, code, key)


class TokenError(ValueError):
    """A count that cannot be made: the text (or the request's texts together) is longer than
    the 4 MiB that are tokenized.

    Attributes:
        code: ``"too-large"``.
        bytes: the text's length in bytes.
    """

    def __init__(self, size: int) -> None:
        super().__init__(f"too-large: {size} bytes of text, over the 4 MiB that are tokenized")
        self.code = "too-large"
        self.bytes = size


class ContextError(ValueError):
    """Trimming (or computing the next budget) failed; the subclass says why.

    Attributes:
        code: the WIT's case name (``does-not-fit``, ``latest-not-user``, ``tokens``,
            ``not-overflow``, ``cannot-shrink``).

    A rejected budget is a :class:`ConfigError` instead, with every problem listed.
    """

    code = ""

    def as_dict(self) -> dict:
        """The error as the core's JSON (``{"error": code, …fields}``), as the vectors hold it."""
        return {"error": self.code}


class DoesNotFitError(ContextError):
    """The system prompt, the latest message and the tools alone exceed the budget: shorten the
    message or use a larger model. Never a silent over-budget result.

    Attributes:
        required_tokens: tokens of ``[system, latest]`` with the tools.
        limit_tokens: the budget's limit.
    """

    code = "does-not-fit"

    def __init__(self, required_tokens: int, limit_tokens: int) -> None:
        super().__init__(
            f"the system prompt and the latest message alone take {required_tokens} tokens, "
            f"over the budget of {limit_tokens}"
        )
        self.required_tokens = required_tokens
        self.limit_tokens = limit_tokens

    def as_dict(self) -> dict:
        return {"error": self.code, "required_tokens": self.required_tokens,
                "limit_tokens": self.limit_tokens}


class LatestNotUserError(ContextError):
    """The latest message does not have the user role.

    Attributes:
        role: the role it has (a :class:`~llm_resilience.Role`).
    """

    code = "latest-not-user"

    def __init__(self, role: object) -> None:
        super().__init__(f"the latest message must have the user role (got {role})")
        self.role = role

    def as_dict(self) -> dict:
        return {"error": self.code, "role": str(self.role)}


class ContextTokensError(ContextError):
    """The counter refused a text.

    Attributes:
        message: the counter's error.
    """

    code = "tokens"

    def __init__(self, message: str) -> None:
        super().__init__(f"token counting failed: {message}")
        self.message = message

    def as_dict(self) -> dict:
        return {"error": self.code, "message": self.message}


class NotOverflowError(ContextError):
    """``next_budget`` was given a failure that is not a context overflow.

    Attributes:
        kind: the failure's kind (an :class:`~llm_resilience.ErrorKind`).
    """

    code = "not-overflow"

    def __init__(self, kind: object) -> None:
        super().__init__(f"not a context overflow (got {kind})")
        self.kind = kind

    def as_dict(self) -> dict:
        return {"error": self.code, "kind": str(self.kind)}


class CannotShrinkError(ContextError):
    """``next_budget``: neither the error nor the caller gives a size to shrink from, or the
    target leaves no room for any request."""

    code = "cannot-shrink"

    def __init__(self) -> None:
        super().__init__("cannot compute a smaller budget from this failure")


class CreditsError(ValueError):
    """A ``/key`` or ``/credits`` body that cannot be used. Messages name fields and JSON types,
    never values (which could be a key); an API error's message is redacted by the component.

    Attributes:
        code: ``too-large``, ``invalid-json``, ``api``, ``missing-field``, ``invalid-field`` or
            ``out-of-range``.
        details: the case's fields, as the core's JSON names them (``bytes``; ``line`` and
            ``column``; ``code`` and ``message``; ``field``, ``expected`` and ``found``).
    """

    def __init__(self, code: str, details: dict, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.details = dict(details)

    def as_dict(self) -> dict:
        """The error as the core's JSON (``{"error": code, …details}``)."""
        return {"error": self.code, **self.details}
