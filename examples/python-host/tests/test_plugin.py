"""Unit tests of the Python host: argument conversion, limits, traps, component loading."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import tomllib
from pathlib import Path

import pytest
import wasmtime
from wasmtime import component as wc

import llm_resilience as llmr
from vector_cases import REPO_ROOT

OPENAI_429 = json.dumps(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-x on tokens per min "
            "(TPM): Limit 30000, Used 29990, Requested 20. Please try again in 6ms.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
)
HEADERS = {"retry-after-ms": "6", "x-ratelimit-remaining-tokens": "0", "content-type": "application/json"}


def test_version_is_the_workspace_version(plugin: llmr.Plugin) -> None:
    cargo = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", plugin.version())
    assert plugin.version() == cargo["workspace"]["package"]["version"]
    assert llmr.version() == plugin.version()


def test_error_kinds_match_the_component(plugin: llmr.Plugin) -> None:
    # The enum `error-kind` as the component declares it, in order.
    store = wasmtime.Store(plugin._engine)
    store.set_fuel(plugin.fuel)
    instance = wc.Linker(plugin._engine).instantiate(store, plugin._component)
    iface = instance.get_export_index(store, "llm:resilience/classify@0.1.0")
    func = instance.get_func(store, instance.get_export_index(store, "classify", iface))
    kind_type = dict(func.type(store).result.fields)["kind"]
    assert [k.value for k in llmr.ErrorKind] == kind_type.names
    assert len(llmr.ErrorKind) == 13
    assert llmr.ErrorKind("rate-limited") is llmr.ErrorKind.RATE_LIMITED
    assert llmr.ErrorKind.QUOTA_EXHAUSTED == "quota-exhausted"
    assert str(llmr.ErrorKind.NOT_FOUND) == "not-found"


def test_classification_is_a_frozen_typed_record(plugin: llmr.Plugin) -> None:
    c = plugin.classify(status=429, headers=HEADERS, body=OPENAI_429)
    assert isinstance(c, llmr.Classification)
    assert isinstance(c.kind, llmr.ErrorKind)
    assert isinstance(c.retryable, bool)
    assert isinstance(c.message, str)
    for name in ("retry_after_ms", "limit_tokens", "requested_tokens"):
        assert getattr(c, name) is None or isinstance(getattr(c, name), int)
    for name in ("provider", "code", "error_type"):
        assert getattr(c, name) is None or isinstance(getattr(c, name), str)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.kind = llmr.ErrorKind.AUTH  # type: ignore[misc]


def test_str_and_bytes_bodies_classify_alike(plugin: llmr.Plugin) -> None:
    as_bytes = plugin.classify(status=429, headers=HEADERS, body=OPENAI_429.encode())
    assert plugin.classify(status=429, headers=HEADERS, body=OPENAI_429) == as_bytes
    assert plugin.classify(status=429, headers=HEADERS, body=bytearray(OPENAI_429.encode())) == as_bytes
    assert plugin.classify(status=429, headers=HEADERS, body=memoryview(OPENAI_429.encode())) == as_bytes
    # Non-ASCII text goes over as UTF-8; a body need not be UTF-8 at all.
    text = '{"error":{"message":"Kuota habis 🙏 — coba lagi","code":"insufficient_quota"}}'
    assert plugin.classify(status=429, body=text) == plugin.classify(status=429, body=text.encode())
    assert isinstance(plugin.classify(status=500, body=b"\xff\xfe\x00garbage\xc3"), llmr.Classification)


def test_header_dict_and_pairs_classify_alike(plugin: llmr.Plugin) -> None:
    from_dict = plugin.classify(status=429, headers=HEADERS, body=OPENAI_429)
    assert plugin.classify(status=429, headers=list(HEADERS.items()), body=OPENAI_429) == from_dict
    assert plugin.classify(status=429, headers=tuple(HEADERS.items()), body=OPENAI_429) == from_dict
    raw = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
    assert plugin.classify(status=429, headers=raw, body=OPENAI_429) == from_dict


def test_no_input_at_all_is_a_classification(plugin: llmr.Plugin) -> None:
    c = plugin.classify()
    assert isinstance(c.kind, llmr.ErrorKind)
    assert c == plugin.classify(None, None, None, None, None)


def test_module_level_classify_uses_the_default_plugin(plugin: llmr.Plugin) -> None:
    got = llmr.classify(status=429, headers=HEADERS, body=OPENAI_429, wall_clock_ms=1_700_000_000_000)
    assert got == plugin.classify(status=429, headers=HEADERS, body=OPENAI_429, wall_clock_ms=1_700_000_000_000)
    assert llmr.default_plugin() is llmr.default_plugin()
    assert llmr.classify(transport="dial tcp 127.0.0.1:443: connect: connection refused") == plugin.classify(
        transport="dial tcp 127.0.0.1:443: connect: connection refused"
    )


def test_a_16_mib_body_is_survived(plugin: llmr.Plugin) -> None:
    big = b'{"error":{"message":"' + b"x" * (16 * 1024 * 1024) + b'"}}'
    start = time.monotonic()
    try:
        result = plugin.classify(status=500, body=big)
    except llmr.PluginError as e:  # a typed error is an acceptable outcome too
        result = e
    elapsed = time.monotonic() - start
    assert isinstance(result, (llmr.Classification, llmr.PluginError))
    # Only the first 256 KiB cross into the component, so a huge body costs little.
    assert elapsed < 10, f"a 16 MiB body took {elapsed:.1f} s"
    # The body beyond what the component reads makes no difference.
    head = big[: llmr.MAX_BODY_BYTES]
    if isinstance(result, llmr.Classification):
        assert result == plugin.classify(status=500, body=head)
    # And the plugin still works.
    after = plugin.classify(status=429, headers=HEADERS, body=OPENAI_429)
    assert after == llmr.Plugin().classify(status=429, headers=HEADERS, body=OPENAI_429)


def _smallest_working_memory_limit() -> int:
    """The smallest memory cap (in 64 KiB pages) at which a small call succeeds."""
    page = 64 * 1024
    for pages in range(1, 1024):
        try:
            p = llmr.Plugin(memory_limit=pages * page)
            p.classify(status=429, headers=HEADERS, body=OPENAI_429)
            return pages * page
        except llmr.PluginError:
            continue
    raise AssertionError("no memory limit up to 64 MiB lets the component run")


def test_memory_limit_traps_become_typed_errors_and_the_plugin_recovers() -> None:
    limit = _smallest_working_memory_limit()
    # Below what it needs to start, the component cannot be instantiated: a typed load error.
    with pytest.raises(llmr.PluginLoadError):
        llmr.Plugin(memory_limit=limit - 64 * 1024 - 1).classify(status=429)
    tight = llmr.Plugin(memory_limit=limit)
    expected = llmr.Plugin().classify(status=429, headers=HEADERS, body=OPENAI_429)
    # A 256 KiB body does not fit in a memory that is just big enough for a small call.
    # It is a trap named for the limit that caused it.
    with pytest.raises(llmr.MemoryLimitError) as trap:
        tight.classify(status=500, body=b"y" * llmr.MAX_BODY_BYTES)
    assert "trap" in str(trap.value) and trap.value.detail
    assert f"memory_limit={limit}" in str(trap.value) and trap.value.value == limit
    # The trap poisoned the instance; the plugin replaces it, so the next call works.
    assert tight.classify(status=429, headers=HEADERS, body=OPENAI_429) == expected
    assert tight.version() == llmr.version()


def test_running_out_of_fuel_is_a_typed_error_every_time() -> None:
    starved = llmr.Plugin(fuel=1)
    with pytest.raises(llmr.FuelExhaustedError):
        starved.classify(status=429, body=OPENAI_429)
    # Not "cannot enter component instance": a fresh instance runs out of fuel again.
    with pytest.raises(llmr.FuelExhaustedError):
        starved.classify(status=429, body=OPENAI_429)
    assert issubclass(llmr.FuelExhaustedError, llmr.PluginTrap)
    assert issubclass(llmr.PluginTrap, llmr.PluginError)


def test_no_limits_at_all(plugin: llmr.Plugin) -> None:
    free = llmr.Plugin(memory_limit=None, fuel=None)
    assert free.classify(status=429, headers=HEADERS, body=OPENAI_429) == plugin.classify(
        status=429, headers=HEADERS, body=OPENAI_429
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"status": 70000}, ValueError),
        ({"status": -1}, ValueError),
        ({"status": "429"}, TypeError),
        ({"status": True}, TypeError),
        ({"headers": "retry-after: 1"}, TypeError),
        ({"headers": [("only-a-name",)]}, TypeError),
        ({"headers": {"retry-after": 1}}, TypeError),
        ({"body": 42}, TypeError),
        ({"transport": b"connection reset"}, TypeError),
        ({"wall_clock_ms": -5}, ValueError),
        ({"wall_clock_ms": 2**64}, ValueError),
        ({"wall_clock_ms": 1.5}, TypeError),
    ],
)
def test_bad_arguments_are_rejected_before_the_call(plugin: llmr.Plugin, kwargs, error) -> None:
    with pytest.raises(error):
        plugin.classify(**kwargs)
    # The rejected call did not disturb the plugin.
    assert isinstance(plugin.classify(status=503), llmr.Classification)


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        llmr.Plugin(memory_limit=0)
    with pytest.raises(ValueError):
        llmr.Plugin(fuel=-1)


def test_component_path_comes_from_the_argument_the_env_or_the_repo(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(llmr.COMPONENT_ENV, raising=False)
    assert llmr.default_component_path() == REPO_ROOT / "target" / "llm-resilience.wasm"
    missing = tmp_path / "missing.wasm"
    monkeypatch.setenv(llmr.COMPONENT_ENV, str(missing))
    assert llmr.default_component_path() == missing
    with pytest.raises(llmr.PluginLoadError, match="not found"):
        llmr.Plugin()
    not_a_component = tmp_path / "junk.wasm"
    not_a_component.write_bytes(b"\0asm junk")
    with pytest.raises(llmr.PluginLoadError):
        llmr.Plugin(not_a_component)


def test_a_component_without_the_interface_is_incompatible(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wasm"
    empty.write_bytes(wasmtime.wat2wasm("(component)"))
    with pytest.raises(llmr.IncompatibleComponentError):
        llmr.Plugin(empty)


def test_a_str_body_is_cut_at_the_byte_limit_exactly(plugin: llmr.Plugin) -> None:
    limit = llmr.MAX_BODY_BYTES
    # "é" is 2 bytes and "😀" 4: the cut falls inside a character, as it does for bytes.
    for text in ("é" * limit, "x" + "😀" * (limit // 4)):
        assert plugin.classify(status=400, body=text) == plugin.classify(
            status=400, body=text.encode()[:limit]
        )
