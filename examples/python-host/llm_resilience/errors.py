"""Errors raised by the plugin host.

Everything that goes wrong *inside* the component, or while loading it, is a :class:`PluginError`.
Wrong argument types and out-of-range values are ordinary :class:`TypeError` /
:class:`ValueError`, raised before the component is entered.
"""

from __future__ import annotations

__all__ = [
    "PluginError",
    "PluginLoadError",
    "PluginTrap",
    "FuelExhaustedError",
    "IncompatibleComponentError",
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
