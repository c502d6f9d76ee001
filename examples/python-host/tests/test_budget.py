"""Unit tests of the tokens, context and credits wrappers (the vectors are run elsewhere)."""

from __future__ import annotations

import json

import pytest

import llm_resilience as llmr


@pytest.fixture(scope="module")
def exact(plugin: llmr.Plugin) -> llmr.TokenCounter:
    """One exact o200k-base counter for the module (building one takes about 0.2 s)."""
    with llmr.TokenCounter.exact(llmr.Encoding.O200K_BASE, plugin=plugin) as counter:
        yield counter


def test_exact_and_upper_bound_counters(plugin: llmr.Plugin, exact: llmr.TokenCounter) -> None:
    assert exact.encoding is llmr.Encoding.O200K_BASE
    assert exact.count_text("") == 0
    assert exact.count_text("hello world") == 2
    with llmr.TokenCounter.upper_bound(plugin=plugin) as upper:
        assert upper.encoding is None
        text = "Halo kak 👨‍👩‍👧‍👦🇮🇩 pesanan saya belum sampai"
        assert upper.count_text(text) >= exact.count_text(text)
        messages = [llmr.Message("system", "Be brief."), {"role": "user", "content": text}]
        assert upper.count_messages(messages) >= exact.count_messages(messages) > 0
    assert llmr.encoding_for_model("openai/gpt-4", plugin=plugin) is llmr.Encoding.CL100K_BASE
    assert llmr.encoding_for_model("gpt-4o-mini", plugin=plugin) is llmr.Encoding.O200K_BASE


def test_counting_errors_are_typed(plugin: llmr.Plugin, exact: llmr.TokenCounter) -> None:
    with pytest.raises(llmr.TokenError) as e:
        exact.count_text("a" * (4 * 1024 * 1024 + 1))
    assert e.value.code == "too-large" and e.value.bytes == 4 * 1024 * 1024 + 1
    with pytest.raises(TypeError):
        exact.count_text(b"bytes")
    with pytest.raises(ValueError):
        exact.count_messages([{"role": "robot", "content": "x"}])
    with pytest.raises(TypeError):
        llmr.TokenCounter()
    with pytest.raises(ValueError):
        llmr.TokenCounter.exact("p50k", plugin=plugin)


def test_tool_calls_in_the_chat_api_shape(exact: llmr.TokenCounter) -> None:
    api = {"role": "assistant", "content": None,
           "tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "lookup", "arguments": "{\"order\":1}"}}]}
    ours = llmr.Message("assistant", "", tool_calls=[llmr.ToolCall("c1", "lookup", "{\"order\":1}")])
    assert exact.count_messages([api]) == exact.count_messages([ours])
    tool = {"name": "lookup", "description": "Find an order", "parameters": {"type": "object"}}
    assert exact.count_messages([ours], [tool]) > exact.count_messages([ours])


def test_trim_keeps_system_and_latest_and_reports(exact: llmr.TokenCounter) -> None:
    history = [llmr.Message("user" if i % 2 == 0 else "assistant", f"message {i} 🙏🏽 " * 20)
               for i in range(40)]
    docs = ["Refunds take 3 days. " * 50, "Shipping is free. " * 50]
    latest = llmr.Message("user", "Where is my order?")
    budget = llmr.ContextBudget(context_window=2_000, reserved_output_tokens=500,
                                safety_margin_tokens=100)
    out = llmr.trim(budget, llmr.TrimInput("Be brief.", docs, history, latest), exact)
    assert out.messages[0] == llmr.Message("system", "Be brief.")
    assert out.messages[-1] == latest
    assert out.report.tokens_after <= out.report.limit_tokens == 1_400
    assert out.report.tokens_after == exact.count_messages(out.messages)
    assert len(out.report.history) == 40 and len(out.report.documents) == 2
    kept, cut, dropped = out.report.tally()
    assert kept + cut + dropped == 42 and dropped > 0
    assert all(isinstance(f, (llmr.Kept, llmr.Truncated, llmr.Dropped)) for f in out.report.history)
    sent_history = out.messages[1 + sum(f.sent for f in out.report.documents):-1]
    assert sent_history[0].role is llmr.Role.USER
    assert json.dumps(out.to_dict(), ensure_ascii=False)


def test_trim_errors_are_typed(plugin: llmr.Plugin, exact: llmr.TokenCounter) -> None:
    with pytest.raises(llmr.DoesNotFitError) as e:
        llmr.trim({"context_window": 600, "reserved_output_tokens": 500,
                   "safety_margin_tokens": 0}, llmr.TrimInput("x " * 500, latest="hi"), exact)
    assert e.value.limit_tokens == 100 and e.value.required_tokens > 100
    assert isinstance(e.value, llmr.ContextError) and e.value.code == "does-not-fit"
    with pytest.raises(llmr.LatestNotUserError) as e2:
        llmr.trim({}, llmr.TrimInput("s", latest=llmr.Message("assistant", "hi")), exact)
    assert e2.value.role is llmr.Role.ASSISTANT
    with pytest.raises(llmr.ConfigError) as e3:
        llmr.trim({"context_window": 0}, llmr.TrimInput("s", latest="hi"), exact)
    assert e3.value.problems
    with pytest.raises(llmr.ConfigError):
        llmr.ContextBudget(context_window=100, reserved_output_tokens=100).limit_tokens(plugin=plugin)
    default = llmr.ContextBudget.default(plugin=plugin)
    assert default.context_window and default.limit_tokens(plugin=plugin) > 0


def test_next_budget_matches_the_retry_decision(plugin: llmr.Plugin) -> None:
    failure = plugin.classify(status=400, body=json.dumps({"error": {
        "message": "This model's maximum context length is 128000 tokens. However, your "
                   "messages resulted in 130412 tokens.", "code": "context_length_exceeded"}}))
    with llmr.RetryPolicy(plugin=plugin) as policy, llmr.RetryBudget(plugin=plugin) as budget:
        nb = llmr.next_budget(failure, {"context_window": 128_000}, 121_000, policy)
        with policy.start_call(0, 1, budget) as call:
            decision = call.decide(failure, 0, request_tokens=121_000)
        assert isinstance(decision, llmr.ShrinkContext)
        assert nb.limit_tokens(plugin=plugin) == decision.target_tokens
        with pytest.raises(llmr.NotOverflowError) as e:
            llmr.next_budget(plugin.classify(status=429), {}, 1000, policy)
        assert e.value.kind is llmr.ErrorKind.RATE_LIMITED


def test_credit_monitor_lifecycle_and_snapshot() -> None:
    plugin = llmr.Plugin()
    monitor = llmr.CreditMonitor({"runway_hours": None, "daily_spend_usd": None}, plugin=plugin)
    assert plugin.live_resources == 1
    assert monitor.observe(llmr.CreditSnapshot(credits=llmr.CreditsInfo(20, 14)), 0) == []
    events = monitor.observe(llmr.CreditSnapshot(credits='{"data":{"total_credits":20,'
                                                         '"total_usage":15.1}}'), 3_600_000)
    assert [(e.alert, e.state) for e in events] == [(llmr.AlertKind.BALANCE_WARNING,
                                                     llmr.AlertState.FIRED)]
    status = monitor.status()
    assert status.active == (llmr.AlertKind.BALANCE_WARNING,)
    assert status.balance_usd == pytest.approx(4.9)
    snapshot = monitor.snapshot()
    monitor.close()
    assert plugin.live_resources == 0 and monitor.closed
    with pytest.raises(llmr.ResourceClosedError):
        monitor.status()
    with llmr.CreditMonitor.restore(json.loads(snapshot), plugin=llmr.Plugin()) as again:
        assert again.status().active == (llmr.AlertKind.BALANCE_WARNING,)
        # The same crossing does not fire twice.
        assert again.observe(llmr.CreditSnapshot(credits=llmr.CreditsInfo(20, 15.2)), 7_200_000) == []
    with pytest.raises(llmr.ConfigError):
        llmr.CreditMonitor({"warning_balance_usd": -1}, plugin=plugin)


def test_credit_parsing(plugin: llmr.Plugin) -> None:
    key = llmr.parse_key('{"data":{"label":"bot","usage":1.5,"limit":10,"limit_remaining":8.5,'
                         '"limit_reset":"daily","rate_limit":{"requests":1}}}', plugin=plugin)
    assert key.limit_reset is llmr.LimitReset.DAILY and key.limit_remaining == 8.5
    assert llmr.parse_credits('{"data":{"total_credits":5,"total_usage":1}}', plugin=plugin).balance == 4
    with pytest.raises(llmr.CreditsError) as e:
        llmr.parse_credits('{"data":{"total_credits":5}}', plugin=plugin)
    assert e.value.code == "missing-field" and e.value.details == {"field": "data.total_usage"}
    with pytest.raises(llmr.CreditsError) as e:
        llmr.parse_key('{"error":{"code":401,"message":"User not found."}}', plugin=plugin)
    assert e.value.as_dict() == {"error": "api", "code": 401, "message": "User not found."}
    a = llmr.suggest_max_tokens("You requested up to 4000 tokens, but can only afford 1200.",
                                plugin=plugin)
    assert a == llmr.Affordable(4000, 1200, 1140)
    assert llmr.suggest_max_tokens("no numbers here", plugin=plugin) is None


def test_calibration(plugin: llmr.Plugin) -> None:
    with llmr.Calibration(plugin=plugin) as cal:
        assert len(cal) == 0 and cal
        ratio = cal.observe("anthropic/claude-3.5-sonnet", 1000, 1100)
        assert ratio is not None and len(cal) == 1
        assert cal.adjust("anthropic/claude-3.5-sonnet", 1000) >= 1000
        again = llmr.Calibration.restore(cal.snapshot(), plugin=plugin)
        assert again.ratio("anthropic/claude-3.5-sonnet") == cal.ratio("anthropic/claude-3.5-sonnet")
        assert again.forget("anthropic/claude-3.5-sonnet") and len(again) == 0
        again.close()
