"""Loading the llm-resilience component and calling it: :class:`Plugin`.

The component imports nothing, so it runs without WASI: it cannot touch files, the network, the
clock or the environment. This module only converts Python values to the WIT types and back.
"""

from __future__ import annotations

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

    Args:
        path: the component file; default :func:`default_component_path`.
        memory_limit: the most linear memory, in bytes, the component may use; ``None`` for no
            cap. Must be at least what the component needs to start (about 1.1 MiB).
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
        config = wasmtime.Config()
        config.consume_fuel = fuel is not None
        self._engine = wasmtime.Engine(config)
        try:
            self._component = wc.Component.from_file(self._engine, self.path)
        except FileNotFoundError as e:
            raise PluginLoadError(
                f"component not found: {self.path} (build it with "
                "`cargo run -p xtask -- component`)"
            ) from e
        except (OSError, wasmtime.WasmtimeError) as e:
            raise PluginLoadError(f"cannot load component {self.path}: {e}") from e
        self._lock = threading.Lock()
        self._store: Optional[wasmtime.Store] = None
        self._classify_func: Any = None
        self._version_func: Any = None
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

    def _instantiate(self) -> None:
        store = wasmtime.Store(self._engine)
        if self.memory_limit is not None:
            store.set_limits(memory_size=self.memory_limit)
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        try:
            instance = wc.Linker(self._engine).instantiate(store, self._component)
        except wasmtime.WasmtimeError as e:
            raise PluginLoadError(f"cannot instantiate {self.path}: {e}") from e
        iface = instance.get_export_index(store, CLASSIFY_INTERFACE)
        if iface is None:
            raise IncompatibleComponentError(f"{self.path} does not export {CLASSIFY_INTERFACE}")
        funcs = {}
        for name in ("classify", "version"):
            index = instance.get_export_index(store, name, iface)
            func = instance.get_func(store, index) if index is not None else None
            if func is None:
                raise IncompatibleComponentError(
                    f"{self.path}: {CLASSIFY_INTERFACE} has no function {name!r}"
                )
            funcs[name] = func
        self._store = store
        self._classify_func = funcs["classify"]
        self._version_func = funcs["version"]

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            if self._store is None:
                # The previous call trapped: start again from a fresh instance.
                self._instantiate()
            store = self._store
            assert store is not None
            func = self._classify_func if name == "classify" else self._version_func
            if self.fuel is not None:
                store.set_fuel(self.fuel)
            try:
                return func(store, *args)
            except wasmtime.WasmtimeError as e:
                # A trap poisons the instance ("cannot enter component instance"): drop it.
                self._store = None
                self._classify_func = self._version_func = None
                raise _trap(name, e) from None


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
