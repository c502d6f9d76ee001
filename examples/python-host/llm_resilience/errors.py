"""Errors raised by the plugin host.

Everything that goes wrong *inside* the component, or while loading it, is a :class:`PluginError`
(a trap, a handle lost to a trap). Wrong argument types and out-of-range values are ordinary
:class:`TypeError` / :class:`ValueError`, raised before the component is entered. What the
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
    "IncompatibleComponentError",
    "ResourceLostError",
    "ResourceClosedError",
    "ConfigError",
    "InvalidKeyError",
    "LimitError",
    "LimiterKeyError",
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
    """The call used up its fuel (its budget of WebAssembly instructions) and was stopped."""


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
