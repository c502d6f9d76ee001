"""The base of every handle on a WIT resource: lifetime, argument checks, config JSON.

A WIT resource (a breaker, a limiter, …) lives inside the component instance; the Python object
holds a handle on it. The handle is released deterministically by :meth:`Resource.close` or
the end of a ``with`` block, and otherwise when the Python object is garbage-collected (then at
the plugin's next call, because a finalizer must not enter the component). A handle whose
instance trapped is gone with it: using it raises :class:`ResourceLostError`.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from typing import Any, Optional, TypeVar, Union

from .classify import Classification, ErrorKind
from .errors import (
    ConfigError,
    IncompatibleComponentError,
    ResourceClosedError,
    ResourceLostError,
)
from ._args import integer, text  # text: re-exported to the capability modules
from .plugin import Plugin

__all__ = ["Resource", "ConfigLike", "SnapshotLike"]

#: A config: a mapping serialised with ``json.dumps`` (``None`` or ``{}`` for the defaults).
ConfigLike = Optional[Mapping[str, Any]]
#: A snapshot: the JSON text ``snapshot()`` returned, or that text parsed into a mapping.
SnapshotLike = Union[str, Mapping[str, Any]]


R = TypeVar("R", bound="Resource")


class Resource:
    """A handle on one resource in a :class:`Plugin`'s component instance.

    Close it when done (``close()``, or use it as a context manager); a handle that is only
    dropped is released once Python collects it. Calls are serialized by the plugin's lock, so
    a handle may be shared between threads.
    """

    _INTERFACE = ""
    _RESOURCE = ""
    #: The capability whose instance holds these handles (default: the interface's).
    _SLOT: Optional[str] = None

    @classmethod
    def _wrap(cls: type[R], plugin: Plugin, handle: Any, epoch: int) -> R:
        self = object.__new__(cls)
        self._plugin = plugin
        self._handle = handle
        self._epoch = epoch
        plugin._adopt(epoch)
        self._finalizer = weakref.finalize(self, plugin._release_later, handle, epoch)
        return self

    @classmethod
    def _new(cls: type[R], plugin: Optional[Plugin], what: str, func: str, *args: Any) -> R:
        """Calls a ``result<resource, list<string>>`` factory; wraps the handle."""
        plugin = _plugin(plugin)
        raw, epoch = plugin._create(cls._INTERFACE, func, *args, slot=cls._SLOT)
        if isinstance(raw, list):
            raise ConfigError(what, [str(p) for p in raw])
        if raw is None or isinstance(raw, (str, bytes, int)):
            raise IncompatibleComponentError(f"{func} returned {raw!r}, not a resource")
        return cls._wrap(plugin, raw, epoch)

    @property
    def plugin(self) -> Plugin:
        """The plugin whose component instance holds this resource."""
        return self._plugin

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handle is None

    def close(self) -> None:
        """Releases the resource in the component now. Idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._finalizer.detach()
            self._plugin._release(handle, self._epoch)

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"instance {self._epoch}"
        return f"<{type(self).__name__} ({state}) in {self._plugin!r}>"

    def _live_handle(self) -> Any:
        if self._handle is None:
            raise ResourceClosedError(f"this {type(self).__name__} is closed")
        return self._handle

    def _call(self, func: str, *args: Any) -> Any:
        """Calls ``[method]<resource>.<func>`` on this resource."""
        handle = self._live_handle()
        return self._plugin._call_in(
            self._epoch, self._INTERFACE, f"[method]{self._RESOURCE}.{func}", handle, *args
        )

    def _same_instance(self, other: "Resource", what: str) -> Any:
        """``other``'s handle, after checking it lives in the same instance as this one."""
        if other._plugin is not self._plugin:
            raise ValueError(f"{what} belongs to another Plugin")
        handle = other._live_handle()
        if other._epoch != self._epoch:
            raise ResourceLostError(
                f"{what} and this {type(self).__name__} come from different component instances "
                "(one was lost in a trap)"
            )
        return handle


def _plugin(plugin: Optional[Plugin]) -> Plugin:
    if plugin is None:
        from . import default_plugin

        return default_plugin()
    if not isinstance(plugin, Plugin):
        raise TypeError(f"plugin must be a Plugin, not {type(plugin).__name__}")
    return plugin


def config_json(what: str, config: ConfigLike) -> str:
    """A config mapping as JSON text (``{}`` for ``None``)."""
    if config is None:
        return "{}"
    if not isinstance(config, Mapping):
        raise TypeError(f"{what} must be a mapping (dict) or None, not {type(config).__name__}")
    try:
        return json.dumps(dict(config), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from None


def snapshot_json(snapshot: SnapshotLike) -> str:
    """A snapshot as JSON text."""
    if isinstance(snapshot, str):
        return snapshot
    if isinstance(snapshot, Mapping):
        return json.dumps(dict(snapshot), allow_nan=False)
    raise TypeError(f"a snapshot is a str or a mapping, not {type(snapshot).__name__}")


def u64(what: str, value: Any) -> int:
    """A WIT ``u64`` argument; an :class:`~llm_resilience.ArgumentError` names ``what``."""
    return integer(what, "u64", value)


def optional_u64(what: str, value: Any) -> Optional[int]:
    return None if value is None else u64(what, value)


def u32(what: str, value: Any) -> int:
    """A WIT ``u32`` argument; an :class:`~llm_resilience.ArgumentError` names ``what``."""
    return integer(what, "u32", value)


def error_kind(value: Any) -> ErrorKind:
    """An :class:`ErrorKind` from itself or its kebab-case name."""
    try:
        return ErrorKind(value)
    except ValueError:
        raise ValueError(f"unknown error kind {value!r}") from None


def field(raw: Any, name: str) -> Any:
    """A field of a record returned by the component (kebab-case names)."""
    try:
        return getattr(raw, name)
    except AttributeError:
        raise IncompatibleComponentError(f"the component's record has no field {name!r}") from None


def classification_record(c: Classification) -> Any:
    """A :class:`Classification` as the WIT record ``classification``."""
    from wasmtime import component as wc

    if not isinstance(c, Classification):
        raise TypeError(f"failure must be a Classification, not {type(c).__name__}")
    record = wc.Record()
    record.kind = error_kind(c.kind).value
    record.retryable = bool(c.retryable)
    setattr(record, "retry-after-ms", optional_u64("retry_after_ms", c.retry_after_ms))
    setattr(record, "limit-tokens", optional_u64("limit_tokens", c.limit_tokens))
    setattr(record, "requested-tokens", optional_u64("requested_tokens", c.requested_tokens))
    record.provider = c.provider
    record.code = c.code
    setattr(record, "error-type", c.error_type)
    record.message = c.message
    return record
