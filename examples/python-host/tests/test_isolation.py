"""Issue 9, findings 2, 3 and 7 on the Python host: a bad argument never reaches the component (so
it can never cost a handle), a trap (fuel, memory) costs only the handles of its capability's
instance and names the limit, and two different keys never share one bucket."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import pytest

import llm_resilience as llmr

ONE_FAILURE_TRIPS = {"consecutive_failures": 1, "failure_rate": None}
INPUT = {"system": "You are a helpful support agent.", "latest": "Halo kak, paket saya belum sampai."}
MODEL = "openai/gpt-4o"


@dataclasses.dataclass
class State:
    """A plugin with state worth keeping in several capabilities."""

    plugin: llmr.Plugin
    breaker: llmr.Breaker
    limiter: llmr.RateLimiter
    calibration: llmr.Calibration
    policy: llmr.RetryPolicy
    counter: llmr.TokenCounter
    ratio: int

    def intact(self) -> None:
        """Every piece of state is still there."""
        assert self.breaker.acquire(1) == llmr.Rejected(llmr.State.OPEN, 59_999)
        assert self.limiter.remaining("chat-1", 0) == 6
        assert self.calibration.ratio(MODEL) == self.ratio
        with llmr.RetryBudget(plugin=self.plugin) as budget:
            assert self.policy.start_call(0, 1, budget).retries == 0


def with_state(plugin: llmr.Plugin) -> State:
    breaker = llmr.Breaker(ONE_FAILURE_TRIPS, plugin=plugin)
    a = breaker.acquire(0)
    assert isinstance(a, llmr.Admitted)
    breaker.record(a.permit, llmr.Failure(llmr.ErrorKind.UNAVAILABLE), 0)
    limiter = llmr.RateLimiter(plugin=plugin)
    assert limiter.check("chat-1", 4, 0) == llmr.Allowed(6)
    calibration = llmr.Calibration(plugin=plugin)
    calibration.observe(MODEL, 1000, 1100)
    state = State(plugin, breaker, limiter, calibration, llmr.RetryPolicy(plugin=plugin),
                  llmr.TokenCounter.upper_bound(plugin=plugin), calibration.ratio(MODEL))
    state.intact()
    return state


# ---- finding 2: bad values are refused before the component is entered ------------------------

BAD_U64 = [-1, 1.5, 2.0, "8000", 2**64, True, math.nan, math.inf]


@pytest.mark.parametrize("value", BAD_U64, ids=repr)
@pytest.mark.parametrize("name", ["context_window", "reserved_output_tokens", "safety_margin_tokens"])
def test_a_bad_budget_value_is_a_config_error_and_costs_nothing(name: str, value: Any) -> None:
    s = with_state(llmr.Plugin())
    made = s.plugin.instances_created
    for budget in ({name: value}, llmr.ContextBudget(**{name: value})):
        with pytest.raises(llmr.ConfigError) as e:
            llmr.trim(budget, INPUT, s.counter)
        found = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else f"a {type(value).__name__}"
        assert e.value.problems == [f"{name} must be an integer in 0..18446744073709551615 (got {found})"]
        with pytest.raises(llmr.ConfigError):
            llmr.ContextBudget(**{name: value}).limit_tokens(plugin=s.plugin)
    overflow = s.plugin.classify(status=400, body=b'{"error":{"message":"maximum context length is 1000 tokens, requested 1200"}}')
    with pytest.raises(llmr.ConfigError):
        llmr.next_budget(overflow, {name: value}, 1200, s.policy)
    # Nothing trapped: no instance was replaced, and every handle kept its state.
    assert s.plugin.instances_created == made
    s.intact()
    assert llmr.trim({name: 100} if name != "context_window" else {name: 100_000}, INPUT, s.counter)


def test_every_budget_problem_is_listed_at_once(plugin: llmr.Plugin) -> None:
    with llmr.TokenCounter.upper_bound(plugin=plugin) as counter:
        with pytest.raises(llmr.ConfigError) as e:
            llmr.trim({"context_window": -1, "max_document_chars": 2**32, "min_document_chars": "9"}, INPUT, counter)
    assert [p.split(" ")[0] for p in e.value.problems] == [
        "context_window", "max_document_chars", "min_document_chars"]
    assert "0..4294967295" in e.value.problems[1]


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, llmr.ArgumentValueError), (2**64, llmr.ArgumentValueError), (1.5, llmr.ArgumentTypeError),
     (2.0, llmr.ArgumentTypeError), ("5", llmr.ArgumentTypeError), (True, llmr.ArgumentTypeError),
     (None, llmr.ArgumentTypeError), (math.nan, llmr.ArgumentTypeError)],
    ids=repr,
)
def test_u64_arguments_are_checked_and_named(value: Any, error: type) -> None:
    s = with_state(llmr.Plugin())
    made = s.plugin.instances_created
    calls = [
        ("now_ms", lambda: s.breaker.acquire(value)),
        ("now_ms", lambda: s.limiter.check("chat-1", 1, value)),
        ("our_count", lambda: s.calibration.adjust(MODEL, value)),
        ("seed", lambda: s.policy.start_call(0, value, llmr.RetryBudget(plugin=s.plugin))),
    ]
    for name, call in calls:
        with pytest.raises(error) as e:
            call()
        assert isinstance(e.value, llmr.ArgumentError)
        assert e.value.argument == name and e.value.code == "invalid-argument"
        assert e.value.limit == "0..18446744073709551615"
        assert name in str(e.value) and "0..18446744073709551615" in str(e.value)
    # The old contract holds too: a TypeError for the wrong type, a ValueError out of range.
    assert issubclass(error, TypeError if error is llmr.ArgumentTypeError else ValueError)
    assert s.plugin.instances_created == made
    s.intact()


def test_u32_arguments_are_checked_and_named(plugin: llmr.Plugin) -> None:
    with llmr.RateLimiter(plugin=plugin) as limiter:
        for value, error in [(-1, llmr.ArgumentValueError), (2**32, llmr.ArgumentValueError), (0.5, llmr.ArgumentTypeError)]:
            with pytest.raises(error) as e:
                limiter.check("chat-1", value, 0)
            assert e.value.argument == "units" and e.value.limit == "0..4294967295"
        assert limiter.check("chat-1", 1, 0) == llmr.Allowed(9)


# ---- finding 7: lone surrogates ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["\ud800", "\ud801", "chat-\udc00", "a\udcff"], ids=ascii)
def test_keys_with_lone_surrogates_are_refused(plugin: llmr.Plugin, key: str) -> None:
    with llmr.RateLimiter(plugin=plugin) as limiter, llmr.BreakerSet(plugin=plugin) as set_:
        for call in (lambda: limiter.check(key, 1, 0), lambda: limiter.remaining(key, 0),
                     lambda: limiter.block_until(key, 5, 0), lambda: set_.acquire(key, 0)):
            with pytest.raises(llmr.ArgumentValueError) as e:
                call()
            assert e.value.code == "invalid-utf8" and e.value.argument == "key"
            assert isinstance(e.value, ValueError)
        assert len(limiter) == 0
        # A well-formed non-BMP key is one character, distinct from U+FFFD.
        assert limiter.check("\U0001F600", 10, 0) == llmr.Allowed(0)
        assert limiter.check("\ufffd", 1, 0) == llmr.Allowed(9)


def test_every_text_argument_refuses_lone_surrogates(plugin: llmr.Plugin) -> None:
    made = plugin.instances_created
    with llmr.TokenCounter.upper_bound(plugin=plugin) as counter, llmr.Calibration(plugin=plugin) as cal:
        made = plugin.instances_created
        cases = [
            ("text", lambda: counter.count_text("x\udfff")),
            ("model", lambda: cal.ratio("\ud800")),
            ("transport", lambda: plugin.classify(transport="reset \ud800")),
            ("header value", lambda: plugin.classify(headers={"x-request-id": "\udc00"})),
            # Caught by the net under the named checks, with the record path.
            ("content", lambda: llmr.trim({}, {**INPUT, "latest": "ok \ud800"}, counter)),
            ("content", lambda: counter.count_messages([llmr.Message(llmr.Role.USER, "a\udbff")])),
            ("name", lambda: counter.count_messages([], [{"name": "\ud800", "description": "", "parameters": "{}"}])),
        ]
        for name, call in cases:
            with pytest.raises(llmr.ArgumentValueError) as e:
                call()
            assert e.value.code == "invalid-utf8", name
            assert name in e.value.argument, (name, e.value.argument)
        assert plugin.instances_created == made
        assert counter.count_text("\U0001F600") > 0


def test_the_net_under_the_named_checks_finds_text_in_records_and_lists() -> None:
    from wasmtime import component as wc

    from llm_resilience._args import check_text

    message = wc.Record()
    message.role = "user"
    message.content = "fine"
    call = wc.Record()
    call.id, call.name, call.arguments = "c1", "lookup", "{\"q\": \"\udc80\"}"
    setattr(message, "tool-calls", [call])
    with pytest.raises(llmr.ArgumentValueError) as e:
        check_text("count-messages", ([message], []))
    assert e.value.argument == "count-messages: argument 0[0].tool-calls[0].arguments"
    assert e.value.code == "invalid-utf8"
    call.arguments = "{}"
    check_text("count-messages", ([message], [], b"\xff", 1, None))


# ---- finding 3: a trap costs only its instance, and names the limit ---------------------------


def test_fuel_running_out_while_counting_costs_only_the_tokens_instance() -> None:
    # Plenty for breakers, limiters and a short text; far too little for 1 MiB of text.
    s = with_state(llmr.Plugin(fuel=20_000_000))
    with pytest.raises(llmr.FuelExhaustedError) as e:
        s.counter.count_text("x" * (1 << 20))
    assert e.value.limit == "fuel" and e.value.value == 20_000_000
    assert "fuel=20000000" in str(e.value) and "tokens instance was replaced" in str(e.value)
    s.intact()
    # The lost counter is lost, every time, never a wrong answer …
    for _ in range(2):
        with pytest.raises(llmr.ResourceLostError, match="tokens"):
            s.counter.count_text("hi")
        with pytest.raises(llmr.ResourceLostError):
            llmr.trim({}, INPUT, s.counter)
    # … and a new one works, in a fresh tokens instance.
    made = s.plugin.instances_created
    with llmr.TokenCounter.upper_bound(plugin=s.plugin) as counter:
        assert s.plugin.instances_created == made + 1
        assert llmr.trim({}, INPUT, counter).report.tokens_after > 0
    s.intact()


def test_fuel_running_out_while_trimming_costs_only_the_tokens_instance() -> None:
    s = with_state(llmr.Plugin(fuel=20_000_000))
    history = [llmr.Message(llmr.Role.USER if i % 2 == 0 else llmr.Role.ASSISTANT, f"pesan nomor {i} " * 20)
               for i in range(5_000)]
    with pytest.raises(llmr.FuelExhaustedError, match="tokens instance"):
        llmr.trim({}, {**INPUT, "history": history}, s.counter)
    s.intact()
    with pytest.raises(llmr.ResourceLostError):
        s.counter.count_text("hi")


@functools.lru_cache(maxsize=None)
def _starting_memory() -> int:
    """The least memory (whole 64 KiB pages) the component can be instantiated in."""
    page = 64 * 1024
    low, high = 1, 1024  # high always works (64 MiB), low never (one page)
    while high - low > 1:
        mid = (low + high) // 2
        try:
            llmr.Plugin(memory_limit=mid * page)
            high = mid
        except llmr.PluginLoadError:
            low = mid
    return high * page


def test_memory_running_out_costs_only_its_instance_and_names_the_limit() -> None:
    limit = _starting_memory() + (1 << 20)
    s = with_state(llmr.Plugin(memory_limit=limit))
    # 3 MiB of text is within the 4 MiB counted, but not within 1 MiB of spare memory.
    with pytest.raises(llmr.MemoryLimitError) as e:
        s.counter.count_text("x" * (3 << 20))
    assert e.value.limit == "memory_limit" and e.value.value == limit
    assert f"memory_limit={limit}" in str(e.value) and "tokens instance was replaced" in str(e.value)
    assert isinstance(e.value, llmr.PluginTrap)
    s.intact()
    with pytest.raises(llmr.ResourceLostError):
        s.counter.count_text("hi")
    with llmr.TokenCounter.upper_bound(plugin=s.plugin) as counter:
        assert counter.count_text("x" * 1000) > 0


def test_a_trap_that_is_not_fuel_or_memory_stays_a_plain_trap() -> None:
    # Fuel runs out first here; with no memory limit there is nothing to call a memory error.
    p = llmr.Plugin(memory_limit=None, fuel=1_000_000)
    with pytest.raises(llmr.PluginTrap) as e:
        p.classify(status=500, body=b"x" * llmr.MAX_BODY_BYTES)
    assert not isinstance(e.value, llmr.MemoryLimitError)


def test_each_kind_of_handle_has_its_own_instance() -> None:
    p = llmr.Plugin()
    assert p.instances_created == 1  # functions
    s = with_state(p)
    assert llmr.ContextBudget.default(plugin=p).context_window > 0  # in the functions instance
    assert set(llmr.CAPABILITIES) >= {"functions", "breaker", "ratelimit", "calibration", "retry", "tokens"}
    assert p.instances_created == 6  # functions, breaker, ratelimit, calibration, retry, tokens
    with llmr.CreditMonitor(plugin=p):
        assert p.instances_created == 7
    s.intact()


# ---- finding 3: the default limits fit the inputs the core accepts -----------------------------


def test_a_one_mib_latest_message_trims_within_the_default_limits() -> None:
    """The issue's case: a 1 MiB latest message ran the component out of fuel in `trim`. With the
    default limits (the wasmtime host's) it is counted exactly and fits a 1M-token window."""
    plugin = llmr.Plugin()
    state = with_state(plugin)
    counter = llmr.TokenCounter.exact(plugin=plugin)
    latest = ("Halo kak, pesanan saya #INV-2026-0042 belum sampai 😭 sudah 5 hari. " * 16_000)[: 1 << 20]
    trimmed = llmr.trim({"context_window": 1_000_000}, {**INPUT, "latest": latest}, counter)
    assert trimmed.messages[-1].content == latest
    assert trimmed.report.tokens_after <= trimmed.report.limit_tokens
    assert trimmed.report.tokens_after > len(latest) // 8
    state.intact()
