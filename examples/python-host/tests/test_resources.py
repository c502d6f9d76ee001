"""Unit tests of the breaker, limiter and retry handles: typed results, config errors, invalid
keys, snapshots across a new plugin instance, resource cleanup, traps."""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import threading

import pytest

import llm_resilience as llmr

ONE_FAILURE_TRIPS = {"consecutive_failures": 1, "failure_rate": None}


def trip(breaker: llmr.Breaker, now_ms: int, kind: llmr.ErrorKind = llmr.ErrorKind.UNAVAILABLE) -> None:
    admission = breaker.acquire(now_ms)
    assert isinstance(admission, llmr.Admitted)
    breaker.record(admission.permit, llmr.Failure(kind), now_ms)


# ---- typed results ----------------------------------------------------------------------


def test_breaker_results_are_tagged_and_typed(plugin: llmr.Plugin) -> None:
    with llmr.Breaker(ONE_FAILURE_TRIPS, plugin=plugin) as b:
        admission = b.acquire(0)
        assert isinstance(admission, llmr.Admitted) and admission.admitted is True
        permit = admission.permit
        assert permit == llmr.Permit(generation=0, id=0, admitted_ms=0, probe=False)
        with pytest.raises(dataclasses.FrozenInstanceError):
            permit.id = 5  # type: ignore[misc]
        # A classification is a failure; its retry hint lengthens the open period.
        failure = plugin.classify(status=429, headers={"retry-after": "120"},
                                  body='{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}')
        recorded = b.record(permit, failure, 10)
        assert recorded == llmr.Counted(llmr.Transition(llmr.State.CLOSED, llmr.State.OPEN))
        assert recorded.recorded == "counted"
        rejected = b.acquire(10)
        assert rejected == llmr.Rejected(llmr.State.OPEN, 120_000)
        assert rejected.admitted is False
        assert b.state(10) is llmr.State.OPEN and b.state(10) == "open" and str(b.state(10)) == "open"
        counts = b.counts(10)
        assert isinstance(counts, llmr.Counts) and counts.state is llmr.State.OPEN
        assert (counts.times_opened, counts.rejected, counts.generation) == (1, 1, 1)
        # The late result of the call admitted before the trip is stale.
        assert b.record(permit, llmr.Success(), 11) == llmr.Stale()
        assert b.force_open(12) == llmr.Transition(llmr.State.OPEN, llmr.State.FORCED_OPEN)
        assert b.acquire(13) == llmr.Rejected(llmr.State.FORCED_OPEN, None)
        assert b.reset(14) == llmr.Transition(llmr.State.FORCED_OPEN, llmr.State.CLOSED)
        assert b.reset(15) is None
        assert b.disable(16) == llmr.Transition(llmr.State.CLOSED, llmr.State.DISABLED)
    assert [s.value for s in llmr.State] == ["closed", "open", "half-open", "forced-open", "disabled"]


def test_ignored_and_uncounted_outcomes_do_not_trip(plugin: llmr.Plugin) -> None:
    with llmr.Breaker(ONE_FAILURE_TRIPS, plugin=plugin) as b:
        for outcome in (llmr.Ignored(), llmr.Failure(llmr.ErrorKind.CONTEXT_OVERFLOW),
                        llmr.Failure("moderation")):  # a kind's name is accepted too
            admission = b.acquire(0)
            assert isinstance(admission, llmr.Admitted)
            assert b.record(admission.permit, outcome, 1) == llmr.Counted(None)
        assert b.state(2) is llmr.State.CLOSED
    assert llmr.Failure("moderation").kind is llmr.ErrorKind.MODERATION
    with pytest.raises(ValueError):
        llmr.Failure("no-such-kind")  # type: ignore[arg-type]


def test_limiter_verdicts_are_tagged(plugin: llmr.Plugin) -> None:
    with llmr.RateLimiter({"limit": 2, "period_ms": 1000}, plugin=plugin) as limiter:
        first = limiter.check("s", 1, 0)
        assert first == llmr.Allowed(remaining=1)
        assert first.verdict is llmr.Verdict.ALLOWED and first.allowed
        assert limiter.check("s", 1, 0) == llmr.Allowed(remaining=0)
        denied = limiter.check("s", 1, 0)
        assert denied == llmr.Denied(retry_in_ms=500)
        assert denied.verdict == "denied" and not denied.allowed
        assert len(limiter) == 1 and bool(limiter)
        limiter.block_until("t", 5000, 0)
        assert limiter.check("t", 1, 100) == llmr.Denied(retry_in_ms=4900)
        assert limiter.remaining("s", 1000) == 2
        limiter.settle("s", 2, 1, 1000)
        assert limiter.remaining("s", 1000) == 2


def test_retry_decisions_are_tagged(plugin: llmr.Plugin) -> None:
    with llmr.RetryPolicy({"jitter": "none"}, plugin=plugin) as policy, \
            llmr.RetryBudget(plugin=plugin) as budget:
        call = policy.start_call(0, 7, budget)
        overloaded = plugin.classify(status=529)
        assert call.decide(overloaded, 0) == llmr.Retry(after_ms=500, attempt=2)
        assert call.retries == 1
        overflow = plugin.classify(
            status=400,
            body='{"error":{"message":"This model\'s maximum context length is 8192 tokens. However, '
                 'your messages resulted in 9000 tokens.","code":"context_length_exceeded"}}',
        )
        assert overflow.kind is llmr.ErrorKind.CONTEXT_OVERFLOW
        shrink = policy.decide(call, overflow, 10, request_tokens=9000)
        assert isinstance(shrink, llmr.ShrinkContext) and shrink.decision == "shrink-context"
        assert shrink.target_tokens < 8192 and shrink.attempt == 3
        give_up = call.decide(plugin.classify(status=401), 20)
        assert give_up == llmr.GiveUp(llmr.Permanent(llmr.ErrorKind.AUTH))
        assert give_up.reason.code is llmr.GiveUpCode.PERMANENT and give_up.reason.code == "permanent"
        call.close()
        assert budget.available(20) >= 0


def test_the_same_seed_gives_the_same_jitter_in_any_plugin(plugin: llmr.Plugin) -> None:
    def delays(p: llmr.Plugin, seed: int) -> list[int]:
        with llmr.RetryPolicy({"jitter": "full", "deadline_ms": None}, plugin=p) as policy, \
                llmr.RetryBudget(plugin=p) as budget, policy.start_call(0, seed, budget) as call:
            out = []
            for _ in range(3):
                d = call.decide(p.classify(status=503), 0)
                assert isinstance(d, llmr.Retry)
                out.append(d.after_ms)
            return out

    assert delays(plugin, 42) == delays(llmr.Plugin(), 42)
    assert delays(plugin, 42) != delays(plugin, 43) or delays(plugin, 42) != delays(plugin, 44)


# ---- config errors ----------------------------------------------------------------------


def test_every_config_problem_is_listed(plugin: llmr.Plugin) -> None:
    with pytest.raises(llmr.ConfigError) as err:
        llmr.Breaker({"consecutive_failures": 0, "half_open_probes": 0}, plugin=plugin)
    assert isinstance(err.value, ValueError)
    assert len(err.value.problems) == 2
    assert any("consecutive_failures" in p for p in err.value.problems)
    assert any("half_open_probes" in p for p in err.value.problems)
    assert "consecutive_failures" in str(err.value)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: llmr.Breaker({"bogus": 1}, plugin=p), "bogus"),
        (lambda p: llmr.BreakerSet({}, 0, plugin=p), "max_keys"),
        (lambda p: llmr.RateLimiter({"limit": 0}, plugin=p), "limit"),
        (lambda p: llmr.RetryPolicy({"base_delay_ms": 0}, plugin=p), "base_delay_ms"),
        (lambda p: llmr.RetryBudget({"retry_percent": 5000}, plugin=p), "retry_percent"),
        (lambda p: llmr.Breaker.restore("{not json", plugin=p), "snapshot"),
        (lambda p: llmr.Breaker.restore({}, plugin=p), "config"),
        (lambda p: llmr.BreakerSet.restore("[]", plugin=p), "snapshot"),
        (lambda p: llmr.RateLimiter.restore('{"config": 5}', plugin=p), "snapshot"),
    ],
)
def test_refused_configs_and_snapshots_are_config_errors(plugin: llmr.Plugin, make, needle: str) -> None:
    with pytest.raises(llmr.ConfigError) as err:
        make(plugin)
    assert err.value.problems and any(needle in p for p in err.value.problems), err.value.problems
    # A refusal is an answer, not a trap: the plugin is untouched.
    assert plugin.live_resources == 0
    with llmr.Breaker(plugin=plugin) as b:
        assert b.state(0) is llmr.State.CLOSED


@pytest.mark.parametrize(
    ("config", "error"),
    [("{}", TypeError), ([("limit", 1)], TypeError), ({"limit": object()}, TypeError),
     ({"limit": float("nan")}, TypeError)],
)
def test_configs_are_mappings_of_json_values(plugin: llmr.Plugin, config, error) -> None:
    with pytest.raises(error):
        llmr.RateLimiter(config, plugin=plugin)


# ---- keys and limit errors --------------------------------------------------------------


def test_breaker_set_keys(plugin: llmr.Plugin) -> None:
    with llmr.BreakerSet(ONE_FAILURE_TRIPS, 2, plugin=plugin) as s:
        for bad, code in (("", "empty-key"), ("k" * 257, "key-too-long"), ("é" * 129, "key-too-long")):
            with pytest.raises(llmr.InvalidKeyError) as err:
                s.acquire(bad, 0)
            assert isinstance(err.value, KeyError) and err.value.code == code and err.value.key == bad
            permit = llmr.Permit(0, 0, 0, False)
            with pytest.raises(KeyError):
                s.record(bad, permit, llmr.Success(), 0)
        ok = s.acquire("k" * 256, 0)
        assert isinstance(ok, llmr.Admitted)
        a = s.acquire("openai/gpt-4o", 1)
        assert isinstance(a, llmr.Admitted)
        assert s.record("openai/gpt-4o", a.permit, llmr.Failure(llmr.ErrorKind.TIMEOUT), 2) == llmr.Counted(
            llmr.Transition(llmr.State.CLOSED, llmr.State.OPEN)
        )
        assert s.state("openai/gpt-4o", 3) is llmr.State.OPEN
        assert s.state("never-seen", 3) is None
        assert s.keys() == sorted(s.keys()) and "openai/gpt-4o" in s.keys() and len(s.keys()) == 2
        with pytest.raises(TypeError):
            s.acquire(b"bytes-key", 0)  # type: ignore[arg-type]


def test_limiter_errors_carry_codes(plugin: llmr.Plugin) -> None:
    with llmr.RateLimiter({"limit": 5, "period_ms": 1000}, plugin=plugin) as limiter:
        with pytest.raises(llmr.LimitError) as err:
            limiter.check("s", 0, 0)
        assert err.value.code == "zero-units" and not isinstance(err.value, KeyError)
        with pytest.raises(llmr.LimitError) as err:
            limiter.check("s", 6, 0)
        assert err.value.code == "exceeds-burst"
        for call in (lambda k: limiter.check(k, 1, 0), lambda k: limiter.remaining(k, 0),
                     lambda k: limiter.settle(k, 1, 1, 0), lambda k: limiter.block_until(k, 5, 0)):
            with pytest.raises(llmr.InvalidKeyError) as key_err:
                call("")
            assert isinstance(key_err.value, llmr.LimitError) and key_err.value.code == "empty-key"
            with pytest.raises(llmr.LimitError) as limit_err:
                call("x" * 300)
            assert limit_err.value.code == "key-too-long"
        assert len(limiter) == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [(("s", 1, -1), ValueError), (("s", 1, 2**64), ValueError), (("s", 1, 1.0), TypeError),
     (("s", -1, 0), ValueError), (("s", 2**32, 0), ValueError), (("s", True, 0), TypeError),
     ((None, 1, 0), TypeError)],
)
def test_bad_arguments_never_reach_the_component(plugin: llmr.Plugin, args, error) -> None:
    with llmr.RateLimiter(plugin=plugin) as limiter:
        with pytest.raises(error):
            limiter.check(*args)
        assert limiter.check("s", 1, 0) == llmr.Allowed(9)


def test_bad_outcomes_and_permits_are_type_errors(plugin: llmr.Plugin) -> None:
    with llmr.Breaker(plugin=plugin) as b:
        a = b.acquire(0)
        assert isinstance(a, llmr.Admitted)
        with pytest.raises(TypeError):
            b.record(a.permit, "success", 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            b.record({"id": 0}, llmr.Success(), 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            b.record(a.permit, llmr.Failure("no-such-kind"), 1)  # type: ignore[arg-type]
        assert b.record(a.permit, llmr.Success(), 1) == llmr.Counted(None)


# ---- snapshots across a restart ---------------------------------------------------------


def test_an_open_breaker_stays_open_in_a_new_plugin(plugin: llmr.Plugin) -> None:
    b = llmr.Breaker(ONE_FAILURE_TRIPS, plugin=plugin)
    trip(b, 1000)
    snapshot = b.snapshot()
    counts = b.counts(2000)
    b.close()
    restarted = llmr.Plugin()  # a new component instance: nothing shared but the JSON
    with llmr.Breaker.restore(snapshot, plugin=restarted) as again:
        assert again.counts(2000) == counts
        assert again.acquire(2000) == llmr.Rejected(llmr.State.OPEN, 59_000)
        assert again.state(61_000) is llmr.State.HALF_OPEN
        # The snapshot restores from its parsed form too.
        with llmr.Breaker.restore(json.loads(snapshot), plugin=llmr.Plugin()) as third:
            assert third.counts(2000) == counts


def test_a_breaker_set_and_a_limiter_survive_a_restart(plugin: llmr.Plugin) -> None:
    with llmr.BreakerSet(ONE_FAILURE_TRIPS, 8, plugin=plugin) as s:
        a = s.acquire("anthropic/claude", 0)
        assert isinstance(a, llmr.Admitted)
        s.record("anthropic/claude", a.permit, llmr.Failure(llmr.ErrorKind.OVERLOADED), 0)
        assert isinstance(s.acquire("openai/gpt-4o", 0), llmr.Admitted)
        snapshot = s.snapshot()
    with llmr.BreakerSet.restore(snapshot, plugin=llmr.Plugin()) as again:
        assert json.loads(again.snapshot()) == json.loads(snapshot)
        assert again.keys() == ["anthropic/claude", "openai/gpt-4o"]
        assert again.acquire("anthropic/claude", 10) == llmr.Rejected(llmr.State.OPEN, 59_990)

    with llmr.RateLimiter({"limit": 3, "period_ms": 3000}, plugin=plugin) as limiter:
        for _ in range(3):
            limiter.check("6281234567890@s.whatsapp.net", 1, 0)
        snapshot = limiter.snapshot()
    with llmr.RateLimiter.restore(snapshot, plugin=llmr.Plugin()) as again:
        assert len(again) == 1
        assert again.check("6281234567890@s.whatsapp.net", 1, 0) == llmr.Denied(1000)
        assert again.check("6281234567890@s.whatsapp.net", 1, 1000) == llmr.Allowed(0)


# ---- resource lifetime ------------------------------------------------------------------


def test_close_releases_the_handle_and_is_idempotent() -> None:
    p = llmr.Plugin()
    b = llmr.Breaker(plugin=p)
    s = llmr.BreakerSet(plugin=p)
    assert p.live_resources == 2 and not b.closed
    b.close()
    b.close()
    assert b.closed and p.live_resources == 1
    with pytest.raises(llmr.ResourceClosedError):
        b.acquire(0)
    with s:
        assert s.keys() == []
    assert s.closed and p.live_resources == 0
    with pytest.raises(llmr.ResourceClosedError):
        s.keys()
    # Closing a budget that a policy needs makes the policy's call fail cleanly, not trap.
    policy, budget = llmr.RetryPolicy(plugin=p), llmr.RetryBudget(plugin=p)
    budget.close()
    with pytest.raises(llmr.ResourceClosedError):
        policy.start_call(0, 1, budget)
    assert isinstance(policy.start_call(0, 1, llmr.RetryBudget(plugin=p)), llmr.RetryCall)


def test_garbage_collected_handles_are_released_at_the_next_call() -> None:
    p = llmr.Plugin()
    llmr.Breaker(plugin=p)  # never bound: collected at once
    b = llmr.RateLimiter(plugin=p)
    del b
    gc.collect()
    assert p.live_resources == 0
    # A call's handle keeps its policy and budget alive.
    call = llmr.RetryPolicy(plugin=p).start_call(0, 1, llmr.RetryBudget(plugin=p))
    gc.collect()
    assert p.live_resources == 3
    assert isinstance(call.decide(p.classify(status=503), 0), llmr.Retry)
    del call
    gc.collect()
    assert p.live_resources == 0


@functools.lru_cache(maxsize=None)
def _starting_memory() -> int:
    """The least memory (whole 64 KiB pages) the component can be instantiated in: its own
    minimum, which holds the token tables (about 6.5 MiB)."""
    page = 64 * 1024
    for pages in range(1, 1024):
        try:
            llmr.Plugin(memory_limit=pages * page)
            return pages * page
        except llmr.PluginLoadError:
            continue
    raise AssertionError("the component does not start in 64 MiB")


def _smallest_limit_and_churn(keep: bool, close: bool) -> None:
    """Creates 20 000 breakers in 2 MiB of component memory above what it starts with (room for
    about 4 000 at once)."""
    p = llmr.Plugin(memory_limit=_starting_memory() + (2 << 20))
    kept = []
    for _ in range(20_000):
        b = llmr.Breaker(plugin=p)
        if keep:
            kept.append(b)
        elif close:
            b.close()
    del b
    assert p.live_resources == len(kept)


def test_released_handles_free_the_components_memory() -> None:
    # The test can fail: handles that are kept exhaust the memory, so a release that did not
    # reach the component would too.
    with pytest.raises(llmr.PluginTrap):
        _smallest_limit_and_churn(keep=True, close=False)
    _smallest_limit_and_churn(keep=False, close=True)  # close()
    _smallest_limit_and_churn(keep=False, close=False)  # garbage collection


def test_a_trap_loses_only_its_instances_handles_and_a_snapshot_brings_them_back() -> None:
    # Enough fuel for breaker calls, far too little to classify a 256 KiB body.
    p = llmr.Plugin(fuel=1_000_000)
    b = llmr.Breaker(ONE_FAILURE_TRIPS, plugin=p)
    trip(b, 0)
    snapshot = b.snapshot()
    limiter = llmr.RateLimiter(plugin=p)
    assert limiter.check("s", 3, 0) == llmr.Allowed(7)
    assert p.live_resources == 2
    with pytest.raises(llmr.FuelExhaustedError, match="functions instance was replaced"):
        p.classify(status=500, body=b'{"error":{"message":"' + b"x" * llmr.MAX_BODY_BYTES)
    # A classify trap costs no handle: classify runs in the functions instance, which holds none.
    assert b.acquire(1) == llmr.Rejected(llmr.State.OPEN, 59_999)
    assert limiter.remaining("s", 0) == 7
    # A trap in the breaker instance loses the breakers, and only them.
    p.fuel = 10
    with pytest.raises(llmr.FuelExhaustedError, match="breaker instance was replaced"):
        b.acquire(1)
    p.fuel = 1_000_000
    # Every later use of a lost handle is a typed error, never a call into the new instance.
    for _ in range(2):
        with pytest.raises(llmr.ResourceLostError, match="breaker"):
            b.acquire(1)
    assert limiter.remaining("s", 0) == 7
    assert issubclass(llmr.ResourceLostError, llmr.PluginError)
    assert p.live_resources == 1
    b.close()  # closing a lost handle is allowed and does nothing
    assert p.live_resources == 1
    # The plugin itself works, and the state comes back from the snapshot.
    with llmr.Breaker.restore(snapshot, plugin=p) as again:
        assert again.acquire(1) == llmr.Rejected(llmr.State.OPEN, 59_999)
    limiter.close()
    assert p.live_resources == 0


def test_a_trap_inside_a_resource_call_is_typed() -> None:
    p = llmr.Plugin(fuel=1_000_000)
    b = llmr.Breaker(plugin=p)
    p.fuel = 10  # (the budget is read at every call) far too little for an acquire
    with pytest.raises(llmr.FuelExhaustedError):
        b.acquire(0)
    p.fuel = 1_000_000
    with pytest.raises(llmr.ResourceLostError):
        b.acquire(0)
    with llmr.Breaker(plugin=p) as fresh:
        assert isinstance(fresh.acquire(0), llmr.Admitted)


def test_handles_of_different_plugins_do_not_mix(plugin: llmr.Plugin) -> None:
    other = llmr.Plugin()
    with llmr.RetryPolicy(plugin=plugin) as policy, llmr.RetryBudget(plugin=other) as budget:
        with pytest.raises(ValueError, match="another Plugin"):
            policy.start_call(0, 1, budget)
    with pytest.raises(TypeError):
        llmr.RetryCall()
    with pytest.raises(TypeError):
        llmr.Breaker(plugin="not a plugin")  # type: ignore[arg-type]


def test_module_level_handles_use_the_default_plugin() -> None:
    before = llmr.default_plugin().live_resources
    with llmr.Breaker() as b:
        assert b.plugin is llmr.default_plugin()
        assert llmr.default_plugin().live_resources == before + 1
    assert llmr.default_plugin().live_resources == before


def test_one_breaker_shared_by_threads(plugin: llmr.Plugin) -> None:
    b = llmr.Breaker({"consecutive_failures": None, "failure_rate": None}, plugin=plugin)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for t in range(100):
                a = b.acquire(t)
                assert isinstance(a, llmr.Admitted)
                b.record(a.permit, llmr.Success(), t)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert b.counts(100).state is llmr.State.CLOSED
    b.close()
