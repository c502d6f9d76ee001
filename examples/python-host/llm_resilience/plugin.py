"""Loading the llm-resilience component and calling it: :class:`Plugin`.

The component imports nothing, so it runs without WASI: it cannot touch files, the network, the
clock or the environment. This module only converts Python values to the WIT types and back.
"""

from __future__ import annotations

import collections
import os
import re
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
    MemoryLimitError,
    PluginLoadError,
    PluginTrap,
    ResourceLostError,
)
from ._args import check_text, integer, is_int, text

__all__ = [
    "Plugin",
    "CAPABILITIES",
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

#: Default cap on the component's linear memory, in bytes: the wasmtime host's default, room
#: for the largest input the core accepts (trimming 100k history messages peaks at ~64 MiB).
DEFAULT_MEMORY_LIMIT = 128 * 1024 * 1024

#: Default fuel (WebAssembly instructions, roughly) per call: the wasmtime host's default. The
#: largest valid inputs need up to ~10^10 (trimming 100k history messages into a 1M-token
#: window, measured in examples/wasmtime-host/BENCHMARKS.md); a runaway call still stops.
DEFAULT_FUEL = 20_000_000_000

#: The component reads only this many bytes of a body (``classify-input.body`` in the WIT), so
#: the host sends at most this many: the result is the same, and a huge body costs no copying.
MAX_BODY_BYTES = 256 * 1024

#: Fuel for instantiating the component (its start code uses a handful of instructions).
_INSTANTIATE_FUEL = 1_000_000

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


#: The component instances of a :class:`Plugin`, each in its own store: one per kind of handle,
#: so that a trap in one costs only the handles living there. ``functions`` runs the calls that
#: hold no handle (classify, version, encoding-for-model, default-budget, limit-tokens,
#: parse-key, parse-credits, suggest-max-tokens): a trap there costs nothing but the call.
#: Calls that take a handle run where it lives: ``trim`` in its counter's instance
#: (``tokens``), ``next_budget`` in its policy's (``retry``). Each is made on first use.
CAPABILITIES = ("functions", "breaker", "ratelimit", "retry", "tokens", "calibration", "credits")


def slot_of(interface: str) -> str:
    """The capability (instance) of a WIT interface name (``llm:resilience/breaker@0.1.0``)."""
    return interface.rsplit("/", 1)[-1].split("@", 1)[0]


class _Instance:
    """One component instance in its own store: the home of one capability's handles."""

    __slots__ = ("slot", "number", "store", "instance", "funcs", "alive", "live")

    def __init__(self, slot: str, number: int, store: wasmtime.Store, instance: wc.Instance) -> None:
        self.slot = slot
        self.number = number
        self.store: Optional[wasmtime.Store] = store
        self.instance: Optional[wc.Instance] = instance
        self.funcs: dict[tuple[str, str], Any] = {}
        self.alive = True
        self.live = 0

    def __repr__(self) -> str:
        return f"{self.slot} #{self.number}{'' if self.alive else ' (trapped)'}"


class Plugin:
    """One loaded llm-resilience component, with its own limits.

    The component is compiled once. Each capability (:data:`CAPABILITIES`) runs in its own
    instance, in its own store with the plugin's memory limit and per-call fuel, made on first
    use. Calls are serialized by a lock, so a ``Plugin`` may be shared between threads (create
    one per thread for parallelism).

    Breakers, limiters, retry objects, counters, calibrations and credit monitors created with
    ``plugin=`` live in their capability's instance. A trap (a bug, fuel or memory running out)
    ends that one instance and the handles in it: the next call of that capability starts a
    fresh instance, and using a lost handle raises :class:`ResourceLostError` (restore state from
    a snapshot). Handles of the other capabilities keep working with their state.

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
        # The live instance of each capability. Resource handles remember their instance, so a
        # handle from an instance that trapped is recognised and never passed to its successor.
        self._instances: dict[str, _Instance] = {}
        self._created = 0
        # Handles whose Python wrappers were garbage-collected, dropped at the next call (a
        # finalizer must not take the lock: it may run inside a call on the same thread).
        self._pending_drops: collections.deque[tuple[Any, _Instance]] = collections.deque()
        # The functions instance is made now, so that a component that cannot load fails here.
        with self._lock:
            self._instance_of("functions")

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
        """Resource handles (breakers, limiters, …) created in the live instances and not yet
        released (handles lost in a trap are not counted). A handle is released by ``close()``, by the end of its ``with`` block, or, once
        its wrapper is garbage-collected, at the plugin's next call."""
        with self._lock:
            self._drain_drops()
            return sum(i.live for i in self._instances.values())

    @property
    def instances_created(self) -> int:
        """Component instances made so far (one per capability used, plus one per trap)."""
        return self._created

    def _instance_of(self, slot: str) -> _Instance:
        """The live instance of capability ``slot``, made if needed (lock held)."""
        current = self._instances.get(slot)
        if current is not None:
            return current
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
        self._created += 1
        inst = _Instance(slot, self._created, store, instance)
        for name in ("classify", "version"):
            self._func(inst, CLASSIFY_INTERFACE, name)
        self._instances[slot] = inst
        return inst

    def _func(self, inst: _Instance, interface: str, name: str) -> Any:
        """The exported function ``name`` of ``interface`` in instance ``inst``."""
        func = inst.funcs.get((interface, name))
        if func is not None:
            return func
        store, instance = inst.store, inst.instance
        assert store is not None and instance is not None
        iface = instance.get_export_index(store, interface)
        if iface is None:
            raise IncompatibleComponentError(f"{self.path} does not export {interface}")
        index = instance.get_export_index(store, name, iface)
        func = instance.get_func(store, index) if index is not None else None
        if func is None:
            raise IncompatibleComponentError(f"{self.path}: {interface} has no function {name!r}")
        inst.funcs[(interface, name)] = func
        return func

    def _call(self, name: str, *args: Any) -> Any:
        """Calls a function of ``interface classify``."""
        return self._invoke(None, CLASSIFY_INTERFACE, name, args, slot="functions")[0]

    def _call_fn(self, interface: str, name: str, *args: Any) -> Any:
        """Calls a free function of ``interface`` (tokens, context, credits)."""
        return self._invoke(None, interface, name, args, slot="functions")[0]

    def _create(
        self, interface: str, name: str, *args: Any, min_fuel: int = 0, slot: Optional[str] = None
    ) -> tuple[Any, _Instance]:
        """Calls a constructor-like function in the instance of ``slot`` (default: the
        interface's capability); returns its result and the instance. ``min_fuel`` raises this
        one call's fuel (building an exact token counter)."""
        return self._invoke(None, interface, name, args, min_fuel, slot)

    def _call_in(self, epoch: _Instance, interface: str, name: str, *args: Any) -> Any:
        """Calls a function on resources that live in instance ``epoch``."""
        return self._invoke(epoch, interface, name, args)[0]

    def _invoke(
        self,
        epoch: Optional[_Instance],
        interface: str,
        name: str,
        args: tuple[Any, ...],
        min_fuel: int = 0,
        slot: Optional[str] = None,
    ) -> tuple[Any, _Instance]:
        # Before the lock and the component: a string that has no UTF-8 encoding (a lone
        # surrogate) anywhere in the arguments is the caller's error, named, not a failure
        # halfway through lowering.
        check_text(name, args)
        with self._lock:
            self._drain_drops()
            if epoch is not None and not epoch.alive:
                raise ResourceLostError(
                    f"{name}: the handle was lost when its component instance ({epoch.slot}) "
                    "trapped; restore it from a snapshot"
                )
            inst = epoch if epoch is not None else self._instance_of(slot or slot_of(interface))
            func = self._func(inst, interface, name)
            store = inst.store
            assert store is not None
            if self.fuel is not None:
                store.set_fuel(min(max(self.fuel, min_fuel), _U64_MAX))
            try:
                return func(store, *args), inst
            except wasmtime.WasmtimeError as e:
                # A trap poisons the instance ("cannot enter component instance"): drop it, and
                # only it; the other capabilities' instances are untouched.
                self._poison(inst)
                raise self._trap(name, inst, e) from None

    def _trap(self, name: str, inst: _Instance, error: wasmtime.WasmtimeError) -> PluginTrap:
        detail = str(error)
        cause = detail.rsplit("Caused by:", 1)[-1].strip() or detail
        where = f"the {inst.slot} instance was replaced"
        if "all fuel consumed" in cause:
            return FuelExhaustedError(
                f"{name}: the call ran out of fuel (the limit is fuel={self.fuel} per call; "
                f"{where})",
                detail,
                limit="fuel",
                value=self.fuel,
            )
        if self.memory_limit is not None and self._is_out_of_memory(detail):
            return MemoryLimitError(
                f"{name}: the component trapped: the call needed more memory than "
                f"memory_limit={self.memory_limit} bytes ({where})",
                detail,
                limit="memory_limit",
                value=self.memory_limit,
            )
        return PluginTrap(f"{name}: the component trapped ({cause}; {where})", detail)

    def _is_out_of_memory(self, detail: str) -> bool:
        """Whether a trap is the component aborting because its memory could not grow.

        The component is stripped of names, so its out-of-memory abort is recognised by its
        place: the innermost frames of a trap the component is made to have on purpose (a
        string larger than the whole memory limit, in a store of its own), learned once per
        component file and limit.
        """
        frames = _frames(detail)
        if not frames or "unreachable" not in detail:
            return False
        key = (str(self.path), self.memory_limit, self.fuel is not None)
        with _CACHE_LOCK:
            known = _OOM_FRAMES.get(key)
        if known is None:
            known = self._probe_out_of_memory()
            with _CACHE_LOCK:
                _OOM_FRAMES[key] = known
        return bool(known) and tuple(frames[: len(known)]) == known

    def _probe_out_of_memory(self) -> tuple[str, ...]:
        assert self.memory_limit is not None
        store = wasmtime.Store(self._engine)
        store.set_limits(memory_size=self.memory_limit)
        if self.fuel is not None:
            store.set_fuel(_U64_MAX)
        try:
            instance = wc.Linker(self._engine).instantiate(store, self._component)
            iface = instance.get_export_index(store, "llm:resilience/credits@0.1.0")
            index = instance.get_export_index(store, "parse-key", iface)
            func = instance.get_func(store, index)
            func(store, "x" * self.memory_limit)
        except wasmtime.WasmtimeError as e:
            return tuple(_frames(str(e))[:2])
        except Exception:  # noqa: BLE001 - no probe, no claim
            return ()
        return ()

    def _poison(self, inst: _Instance) -> None:
        inst.store = inst.instance = None
        inst.funcs = {}
        inst.alive = False
        inst.live = 0
        if self._instances.get(inst.slot) is inst:
            del self._instances[inst.slot]

    def _adopt(self, epoch: _Instance) -> None:
        """Counts a handle created in instance ``epoch`` as live."""
        with self._lock:
            if epoch.alive:
                epoch.live += 1

    def _release(self, handle: Any, epoch: _Instance) -> None:
        """Drops a handle now (``close()``); nothing to do if its instance is gone."""
        with self._lock:
            self._drop(handle, epoch)

    def _release_later(self, handle: Any, epoch: _Instance) -> None:
        """Queues a handle whose wrapper was garbage-collected; dropped at the next call."""
        self._pending_drops.append((handle, epoch))

    def _drain_drops(self) -> None:
        while True:
            try:
                handle, epoch = self._pending_drops.popleft()
            except IndexError:
                return
            self._drop(handle, epoch)

    def _drop(self, handle: Any, epoch: _Instance) -> None:
        store = epoch.store
        if store is None or not epoch.alive:
            return  # its instance trapped: the handle went with it
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        try:
            handle.drop(store)
        except wasmtime.WasmtimeError:
            self._poison(epoch)
            return
        epoch.live -= 1


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


#: The innermost frames of the component's out-of-memory abort, per (file, limit, fuel).
_OOM_FRAMES: dict[tuple[str, Optional[int], bool], tuple[str, ...]] = {}

_FRAME = re.compile(r"^\s*\d+:\s+0x[0-9a-f]+ - (.+?)\s*$", re.MULTILINE)


def _frames(detail: str) -> list[str]:
    """The functions of a wasmtime trap's backtrace, innermost first."""
    return _FRAME.findall(detail)


_is_int = is_int


def _status(status: Optional[int]) -> Optional[int]:
    return None if status is None else integer("status", "u16", status)


def _wall_clock_ms(value: Optional[int]) -> Optional[int]:
    return None if value is None else integer("wall_clock_ms", "u64", value)


def _optional_str(what: str, value: Optional[str]) -> Optional[str]:
    return None if value is None else text(what, value)


def _header_text(what: str, value: Any) -> str:
    if isinstance(value, str):
        return text(f"header {what}", value)
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
