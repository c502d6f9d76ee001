"""Loading the llm-resilience component and calling it: :class:`Plugin`.

The component imports nothing, so it runs without WASI: it cannot touch files, the network, the
clock or the environment. This module only converts Python values to the WIT types and back.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import wasmtime
from wasmtime import component as wc

from .classify import Classification, ErrorKind
from .errors import (
    FuelExhaustedError,
    IncompatibleComponentError,
    PluginLoadError,
    PluginTrap,
    ResourceLostError,
)

__all__ = [
    "Plugin",
    "HeadersLike",
    "BodyLike",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_FUEL",
    "MAX_BODY_BYTES",
    "COMPONENT_ENV",
    "default_component_path",
]

#: The environment variable that names the component file when no path is given.
COMPONENT_ENV = "LLMR_COMPONENT"

#: The interface this host calls (``interface classify`` of ``llm:resilience@0.1.0``).
CLASSIFY_INTERFACE = "llm:resilience/classify@0.1.0"

#: Default cap on the component's linear memory, in bytes.
DEFAULT_MEMORY_LIMIT = 64 * 1024 * 1024

#: Default fuel (WebAssembly instructions, roughly) per call: far above what classifying a
#: capped body costs, low enough that a runaway call stops within about a second.
DEFAULT_FUEL = 1_000_000_000

#: The component reads only this many bytes of a body (``classify-input.body`` in the WIT), so
#: the host sends at most this many: the result is the same, and a huge body costs no copying.
MAX_BODY_BYTES = 256 * 1024

#: Fuel for instantiating the component (its start code uses a handful of instructions).
_INSTANTIATE_FUEL = 1_000_000

_U16_MAX = 0xFFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

#: Headers: a mapping (``dict``, ``requests``' or ``httpx``' header objects, anything with
#: ``items()``) or an iterable of ``(name, value)`` pairs. Repeated names are kept as given.
HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]], Any]
#: A body: bytes-like, or ``str`` (sent as UTF-8).
BodyLike = Union[bytes, bytearray, memoryview, str]


def default_component_path() -> Path:
    """Where the component is when no path is given.

    ``$LLMR_COMPONENT`` if set, else ``target/llm-resilience.wasm`` in the repository this
    package lives in (the first parent directory holding ``wit/llm-resilience.wit``), which is
    where ``cargo run -p xtask -- component`` writes it.

    Raises:
        PluginLoadError: neither is available (for example, the package was installed outside
            the repository and ``$LLMR_COMPONENT`` is unset).
    """
    env = os.environ.get(COMPONENT_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for directory in here.parents:
        if (directory / "wit" / "llm-resilience.wit").is_file():
            return directory / "target" / "llm-resilience.wasm"
    raise PluginLoadError(
        f"no component path given, ${COMPONENT_ENV} is unset, and {here} is not inside the "
        "llm-resilience repository; build the component with `cargo run -p xtask -- component` "
        f"and pass its path or set ${COMPONENT_ENV}"
    )


class Plugin:
    """One loaded llm-resilience component, with its own limits.

    The component is compiled once; calls run in one instance, which is replaced after a trap.
    Calls are serialized by a lock, so a ``Plugin`` may be shared between threads (create one
    per thread for parallelism).

    Breakers, limiters and retry objects created with ``plugin=`` live in this plugin's
    instance. A trap ends the instance and them with it: the next call starts a fresh instance,
    and using a lost handle raises :class:`ResourceLostError`; restore state from a snapshot.

    Args:
        path: the component file; default :func:`default_component_path`.
        memory_limit: the most linear memory, in bytes, the component may use; ``None`` for no
            cap. Must be at least what the component needs to start (about 6.5 MiB: the
            token tables are in its initial memory).
        fuel: the budget of WebAssembly instructions for each call; ``None`` for no budget.

    Raises:
        PluginLoadError: the file is missing or is not a valid component, or it cannot be
            instantiated within ``memory_limit``.
        IncompatibleComponentError: the component lacks ``llm:resilience/classify@0.1.0``.
    """

    def __init__(
        self,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        *,
        memory_limit: Optional[int] = DEFAULT_MEMORY_LIMIT,
        fuel: Optional[int] = DEFAULT_FUEL,
    ) -> None:
        if memory_limit is not None and (not _is_int(memory_limit) or memory_limit <= 0):
            raise ValueError(f"memory_limit must be a positive int or None, not {memory_limit!r}")
        if fuel is not None and (not _is_int(fuel) or not 0 < fuel <= _U64_MAX):
            raise ValueError(f"fuel must be a positive int below 2**64 or None, not {fuel!r}")
        self.path = Path(path) if path is not None else default_component_path()
        self.memory_limit = memory_limit
        self.fuel = fuel
        self._engine, self._component = _compiled(self.path, fuel_enabled=fuel is not None)
        self._lock = threading.Lock()
        self._store: Optional[wasmtime.Store] = None
        self._instance: Optional[wc.Instance] = None
        self._funcs: dict[tuple[str, str], Any] = {}
        # Which instance this is: resource handles remember it, so a handle from an instance
        # that trapped is recognised and never passed to its successor.
        self._epoch = 0
        # Handles whose Python wrappers were garbage-collected, dropped at the next call (a
        # finalizer must not take the lock: it may run inside a call on the same thread).
        self._pending_drops: collections.deque[tuple[Any, int]] = collections.deque()
        self._live = 0
        self._instantiate()

    def __repr__(self) -> str:
        return (
            f"Plugin({str(self.path)!r}, memory_limit={self.memory_limit!r}, fuel={self.fuel!r})"
        )

    def classify(
        self,
        status: Optional[int] = None,
        headers: Optional[HeadersLike] = None,
        body: Optional[BodyLike] = b"",
        transport: Optional[str] = None,
        wall_clock_ms: Optional[int] = None,
    ) -> Classification:
        """Classifies one failed call: an HTTP response, or a transport failure.

        Args:
            status: the HTTP status, when a response arrived.
            headers: the response headers (see :data:`HeadersLike`); names match in any case.
            body: the response body, bytes or ``str``; only its first 256 KiB are read.
            transport: the transport error's text, when the call failed before a response.
            wall_clock_ms: the Unix time in milliseconds, used only to turn an HTTP-date or an
                epoch reset header into a delay.

        Raises:
            TypeError, ValueError: an argument has the wrong type or is out of range.
            PluginTrap: the component trapped (:class:`FuelExhaustedError` when it ran out of
                fuel); the plugin stays usable.
            PluginLoadError: the instance had to be replaced after a trap and could not be.
        """
        record = wc.Record()
        record.status = _status(status)
        record.headers = _headers(headers)
        record.body = _body(body)
        record.transport = _optional_str("transport", transport)
        setattr(record, "wall-clock-ms", _wall_clock_ms(wall_clock_ms))
        raw = self._call("classify", record)
        return _classification(raw)

    def version(self) -> str:
        """The version of the library inside the component, ``major.minor.patch``."""
        raw = self._call("version")
        if not isinstance(raw, str):
            raise IncompatibleComponentError(f"version() returned {raw!r}, not a string")
        return raw

    @property
    def live_resources(self) -> int:
        """Resource handles (breakers, limiters, …) created in the current instance and not yet
        released. A handle is released by ``close()``, by the end of its ``with`` block, or, once
        its wrapper is garbage-collected, at the plugin's next call."""
        with self._lock:
            self._drain_drops()
            return self._live

    def _instantiate(self) -> None:
        store = wasmtime.Store(self._engine)
        if self.memory_limit is not None:
            store.set_limits(memory_size=self.memory_limit)
        if self.fuel is not None:
            # Instantiating runs the component's start code (a few instructions): it gets its
            # own budget, so that even a tiny per-call `fuel` leaves the plugin loadable.
            store.set_fuel(_INSTANTIATE_FUEL)
        try:
            instance = wc.Linker(self._engine).instantiate(store, self._component)
        except wasmtime.WasmtimeError as e:
            raise PluginLoadError(f"cannot instantiate {self.path}: {e}") from e
        self._store = store
        self._instance = instance
        self._funcs = {}
        self._epoch += 1
        self._live = 0
        for name in ("classify", "version"):
            self._func(CLASSIFY_INTERFACE, name)

    def _func(self, interface: str, name: str) -> Any:
        """The exported function ``name`` of ``interface`` in the current instance."""
        func = self._funcs.get((interface, name))
        if func is not None:
            return func
        store, instance = self._store, self._instance
        assert store is not None and instance is not None
        iface = instance.get_export_index(store, interface)
        if iface is None:
            raise IncompatibleComponentError(f"{self.path} does not export {interface}")
        index = instance.get_export_index(store, name, iface)
        func = instance.get_func(store, index) if index is not None else None
        if func is None:
            raise IncompatibleComponentError(f"{self.path}: {interface} has no function {name!r}")
        self._funcs[(interface, name)] = func
        return func

    def _call(self, name: str, *args: Any) -> Any:
        """Calls a function of ``interface classify``."""
        return self._invoke(None, CLASSIFY_INTERFACE, name, args)[0]

    def _call_fn(self, interface: str, name: str, *args: Any) -> Any:
        """Calls a free function of ``interface`` (tokens, context, credits)."""
        return self._invoke(None, interface, name, args)[0]

    def _create(
        self, interface: str, name: str, *args: Any, min_fuel: int = 0
    ) -> tuple[Any, int]:
        """Calls a constructor-like function; returns its result and the instance's epoch.
        ``min_fuel`` raises this one call's fuel (building an exact token counter)."""
        return self._invoke(None, interface, name, args, min_fuel)

    def _call_in(self, epoch: int, interface: str, name: str, *args: Any) -> Any:
        """Calls a function on resources that live in instance ``epoch``."""
        return self._invoke(epoch, interface, name, args)[0]

    def _invoke(
        self,
        epoch: Optional[int],
        interface: str,
        name: str,
        args: tuple[Any, ...],
        min_fuel: int = 0,
    ) -> tuple[Any, int]:
        with self._lock:
            if epoch is not None and (epoch != self._epoch or self._store is None):
                raise ResourceLostError(
                    f"{name}: the handle was lost when the component trapped (its instance was "
                    "replaced); restore it from a snapshot"
                )
            if self._store is None:
                # The previous call trapped: start again from a fresh instance.
                self._instantiate()
            self._drain_drops()
            if self._store is None:  # a drop trapped
                if epoch is not None:
                    raise ResourceLostError(f"{name}: the handle was lost in a trap")
                self._instantiate()
            func = self._func(interface, name)
            store = self._store
            assert store is not None
            if self.fuel is not None:
                store.set_fuel(min(max(self.fuel, min_fuel), _U64_MAX))
            try:
                return func(store, *args), self._epoch
            except wasmtime.WasmtimeError as e:
                # A trap poisons the instance ("cannot enter component instance"): drop it.
                self._poison()
                raise _trap(name, e) from None

    def _poison(self) -> None:
        self._store = self._instance = None
        self._funcs = {}
        self._live = 0

    def _adopt(self, epoch: int) -> None:
        """Counts a handle created in instance ``epoch`` as live."""
        with self._lock:
            if epoch == self._epoch and self._store is not None:
                self._live += 1

    def _release(self, handle: Any, epoch: int) -> None:
        """Drops a handle now (``close()``); nothing to do if its instance is gone."""
        with self._lock:
            self._drop(handle, epoch)

    def _release_later(self, handle: Any, epoch: int) -> None:
        """Queues a handle whose wrapper was garbage-collected; dropped at the next call."""
        self._pending_drops.append((handle, epoch))

    def _drain_drops(self) -> None:
        while True:
            try:
                handle, epoch = self._pending_drops.popleft()
            except IndexError:
                return
            self._drop(handle, epoch)

    def _drop(self, handle: Any, epoch: int) -> None:
        store = self._store
        if store is None or epoch != self._epoch:
            return  # its instance trapped: the handle went with it
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        try:
            handle.drop(store)
        except wasmtime.WasmtimeError:
            self._poison()
            return
        self._live -= 1


_ENGINES: dict[bool, wasmtime.Engine] = {}
_COMPONENTS: dict[tuple[str, int, int, bool], wc.Component] = {}
_CACHE_LOCK = threading.Lock()


def _compiled(path: Path, *, fuel_enabled: bool) -> tuple[wasmtime.Engine, wc.Component]:
    """The engine and the compiled component for ``path``, compiled once per file version.

    Compiling takes far longer than instantiating, so plugins with the same file (and the same
    fuel setting, which is part of the engine's configuration) share the compiled code.
    """
    try:
        stat = path.stat()
    except FileNotFoundError as e:
        raise PluginLoadError(
            f"component not found: {path} (build it with `cargo run -p xtask -- component`)"
        ) from e
    except OSError as e:
        raise PluginLoadError(f"cannot read component {path}: {e}") from e
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, fuel_enabled)
    with _CACHE_LOCK:
        engine = _ENGINES.get(fuel_enabled)
        if engine is None:
            config = wasmtime.Config()
            config.consume_fuel = fuel_enabled
            engine = _ENGINES[fuel_enabled] = wasmtime.Engine(config)
        component = _COMPONENTS.get(key)
        if component is None:
            try:
                component = wc.Component.from_file(engine, path)
            except (OSError, wasmtime.WasmtimeError) as e:
                raise PluginLoadError(f"cannot load component {path}: {e}") from e
            _COMPONENTS[key] = component
    return engine, component


def _trap(name: str, error: wasmtime.WasmtimeError) -> PluginTrap:
    detail = str(error)
    cause = detail.rsplit("Caused by:", 1)[-1].strip() or detail
    if "all fuel consumed" in cause:
        return FuelExhaustedError(f"{name}: the call ran out of fuel ({cause})", detail)
    return PluginTrap(f"{name}: the component trapped ({cause})", detail)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _status(status: Optional[int]) -> Optional[int]:
    if status is None:
        return None
    if not _is_int(status):
        raise TypeError(f"status must be an int or None, not {type(status).__name__}")
    if not 0 <= status <= _U16_MAX:
        raise ValueError(f"status must be in 0..65535, not {status}")
    return status


def _wall_clock_ms(value: Optional[int]) -> Optional[int]:
    if value is None:
        return None
    if not _is_int(value):
        raise TypeError(f"wall_clock_ms must be an int or None, not {type(value).__name__}")
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"wall_clock_ms must be in 0..2**64-1, not {value}")
    return value


def _optional_str(what: str, value: Optional[str]) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{what} must be a str or None, not {type(value).__name__}")


def _header_text(what: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        # Raw header bytes (e.g. from a low-level client): HTTP/1 headers are ISO-8859-1.
        return bytes(value).decode("latin-1")
    raise TypeError(f"header {what} must be str or bytes, not {type(value).__name__}")


def _headers(headers: Optional[HeadersLike]) -> list[wc.Record]:
    if headers is None:
        return []
    if isinstance(headers, (str, bytes, bytearray)):
        raise TypeError("headers must be a mapping or (name, value) pairs, not a string")
    items = headers.items() if callable(getattr(headers, "items", None)) else headers
    out = []
    for pair in items:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError(f"each header must be a (name, value) pair, not {pair!r}") from None
        header = wc.Record()
        header.name = _header_text("name", name)
        header.value = _header_text("value", value)
        out.append(header)
    return out


def _body(body: Optional[BodyLike]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        # Encode at most what is read: a UTF-8 character takes at most 4 bytes.
        data = body[:MAX_BODY_BYTES].encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(memoryview(body)[:MAX_BODY_BYTES])
    else:
        raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
    return data[:MAX_BODY_BYTES]


def _optional_u64(raw: Any, field: str) -> Optional[int]:
    value = getattr(raw, field)
    if value is None or _is_int(value):
        return value
    raise IncompatibleComponentError(f"classification field {field!r} is {value!r}")


def _classification(raw: Any) -> Classification:
    try:
        kind = ErrorKind(raw.kind)
    except ValueError:
        raise IncompatibleComponentError(f"unknown error kind {raw.kind!r}") from None
    return Classification(
        kind=kind,
        retryable=bool(raw.retryable),
        retry_after_ms=_optional_u64(raw, "retry-after-ms"),
        limit_tokens=_optional_u64(raw, "limit-tokens"),
        requested_tokens=_optional_u64(raw, "requested-tokens"),
        provider=getattr(raw, "provider"),
        code=getattr(raw, "code"),
        error_type=getattr(raw, "error-type"),
        message=raw.message,
    )
