"""Redaction (issue 4): real-shaped FAKE keys fed into every input of the tokens, context and
credits wrappers that can reach an error, an alert, a report or a message; no output may
contain them. (A trimmed request's messages are the caller's own texts, sent on unchanged: the
test checks they are passed through, and that nothing else carries a key.)
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

import llm_resilience as llmr

# FAKE keys with the real shapes; none of them was ever valid.
FAKE_KEYS = (
    "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef",
    "sk-ant-api03-FAKE_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzAA",
    "sk-proj-FAKEabc123DEF456ghi789JKL012mno345PQR678stu901VWX234yzA567BCD890efg_hij-KLM",
    "AIzaSyFAKE0123456789abcdefghijklmnopq",
)
BEARER = "Bearer FAKEtokenFAKEtokenFAKEtoken0123456789"
#: The secret part of each input, which must appear in no output.
SECRETS = FAKE_KEYS + ("FAKEtokenFAKEtokenFAKEtoken0123456789",)
CARRIERS = FAKE_KEYS + (BEARER, f"Authorization: {BEARER}")


def _text(value: Any) -> str:
    """Everything an output says: its repr, its str, its dict form, an exception's args."""
    parts = [repr(value), str(value)]
    for name in ("to_dict", "as_dict"):
        fn = getattr(value, name, None)
        if callable(fn):
            parts.append(json.dumps(fn(), default=str))
    if isinstance(value, BaseException):
        parts.extend(str(a) for a in value.args)
        parts.extend(str(v) for v in vars(value).values())
    return "\n".join(parts)


def assert_clean(what: str, outputs: list[Any]) -> None:
    text = "\n".join(_text(o) for o in outputs)
    for secret in SECRETS:
        assert secret not in text, f"{what}: an output contains {secret[:16]}…:\n{text[:2000]}"


def outcome(fn: Callable[[], Any]) -> Any:
    """The result of ``fn``, or the exception it raised (both are outputs)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - every error is an output to check
        return e


@pytest.mark.parametrize("secret", CARRIERS)
def test_credit_parsing_never_returns_a_key(plugin: llmr.Plugin, secret: str) -> None:
    q = json.dumps(secret)[1:-1]
    bodies = [
        json.dumps({"data": {"label": secret, "usage": 1, "limit": None, "expires_at": None}}),
        json.dumps({"data": {"label": f"key {secret} of the bot", "usage": 1}}),
        json.dumps({"error": {"code": 401, "message": f"No auth credentials found: {secret}"}}),
        json.dumps({"error": {"code": 402, "message": secret}}),
        json.dumps({"data": {"usage": secret}}),
        json.dumps({"data": {"total_credits": secret, "total_usage": 1}}),
        json.dumps({"data": {"limit_reset": secret}}),
        '{"data": {"label": "' + q + '"',  # cut short: invalid JSON
        secret,
        f'{{"{q}": 1}}',
        json.dumps({"data": {secret: 1, "total_credits": 2, "total_usage": 1}}),
    ]
    outputs = []
    for body in bodies:
        outputs.append(outcome(lambda: llmr.parse_key(body, plugin=plugin)))
        outputs.append(outcome(lambda: llmr.parse_credits(body, plugin=plugin)))
        outputs.append(outcome(lambda: llmr.suggest_max_tokens(body, plugin=plugin)))
    outputs.append(outcome(lambda: llmr.suggest_max_tokens(
        f"{secret} You requested up to 4000 tokens, but can only afford 1200.", plugin=plugin)))
    assert_clean("parse_key / parse_credits / suggest_max_tokens", outputs)


@pytest.mark.parametrize("secret", CARRIERS)
def test_credit_monitor_alerts_status_and_errors_never_carry_a_key(secret: str) -> None:
    plugin = llmr.Plugin()
    outputs: list[Any] = []
    with llmr.CreditMonitor(plugin=plugin) as monitor:
        for hour, remaining in enumerate((7.5, 0.4, 10.0)):
            body = json.dumps({"data": {"label": secret, "limit": 10, "limit_remaining": remaining,
                                        "usage": 40 + hour, "usage_daily": 2 + hour}})
            snapshot = llmr.CreditSnapshot(key=body)
            outputs.extend(monitor.observe(snapshot, hour * 3_600_000, 1_795_813_200_000))
            # The label given directly, not through parse_key: the monitor must not echo it.
            direct = llmr.KeyInfo(label=secret, limit=10.0, limit_remaining=remaining)
            outputs.extend(monitor.observe(llmr.CreditSnapshot(key=direct), hour * 3_600_000 + 1))
            outputs.append(monitor.status())
        assert any(isinstance(o, llmr.AlertEvent) for o in outputs), "no alert was raised"
        outputs.append(outcome(lambda: monitor.observe(llmr.CreditSnapshot(key=secret), 10**8)))
        outputs.append(outcome(lambda: monitor.observe(
            llmr.CreditSnapshot(credits=json.dumps({"error": {"message": secret}})), 10**8)))
    outputs.append(outcome(lambda: llmr.CreditMonitor({"runway_hours": -1}, plugin=plugin)))
    outputs.append(outcome(lambda: llmr.CreditMonitor.restore(secret, plugin=plugin)))
    assert_clean("CreditMonitor", outputs)


@pytest.mark.parametrize("secret", CARRIERS)
def test_config_and_snapshot_errors_never_carry_a_key(plugin: llmr.Plugin, secret: str) -> None:
    outputs: list[Any] = []
    for config in ({"warning_balance_usd": secret}, {secret: 1}):
        outputs.append(outcome(lambda: llmr.CreditMonitor(config, plugin=plugin)))
        outputs.append(outcome(lambda: llmr.Calibration(config, plugin=plugin)))
    for snapshot in (json.dumps({"config": secret}), json.dumps({secret: secret})):
        outputs.append(outcome(lambda: llmr.CreditMonitor.restore(snapshot, plugin=plugin)))
        outputs.append(outcome(lambda: llmr.Calibration.restore(snapshot, plugin=plugin)))
    assert all(isinstance(o, llmr.ConfigError) for o in outputs)
    # serde's messages quote the offending value; the component redacts them
    # (wasm-plugin/src/config.rs).
    assert_clean("config and snapshot errors", outputs)


@pytest.mark.parametrize("secret", CARRIERS)
def test_trimming_reports_and_errors_never_carry_a_key(plugin: llmr.Plugin, secret: str) -> None:
    counter = llmr.TokenCounter.upper_bound(plugin=plugin)
    history = [
        llmr.Message("user", f"my key is {secret}", name="cust"),
        llmr.Message("assistant", "", tool_calls=[llmr.ToolCall("c1", "lookup", json.dumps({"k": secret}))]),
        llmr.Message("tool", f"result {secret}", tool_call_id="c1"),
        llmr.Message("assistant", f"Noted {secret} " * 40),
    ]
    tools = [llmr.ToolSchema("lookup", f"uses {secret}", json.dumps({"default": secret}))]
    documents = [f"doc {secret} " * 30, secret]
    outputs: list[Any] = []
    trimmed_messages: list[llmr.Message] = []
    for window in (100_000, 1_200, 700, 300, 150):
        budget = llmr.ContextBudget(context_window=window, reserved_output_tokens=100,
                                    safety_margin_tokens=0, max_message_chars=50,
                                    min_document_chars=10)
        result = outcome(lambda: llmr.trim(
            budget, llmr.TrimInput(secret, documents, history, f"latest {secret}", tools), counter))
        if isinstance(result, llmr.Trimmed):
            outputs.append(result.report)
            trimmed_messages.extend(result.messages)
        else:
            outputs.append(result)
    assert any(isinstance(o, llmr.DoesNotFitError) for o in outputs)
    outputs.append(outcome(lambda: llmr.trim(
        {}, llmr.TrimInput(secret, [], [], llmr.Message("assistant", secret)), counter)))
    outputs.append(outcome(lambda: llmr.trim(
        {"context_window": 0}, llmr.TrimInput(secret, [], [], secret), counter)))
    outputs.append(outcome(lambda: llmr.trim(
        {secret: 1}, llmr.TrimInput(secret, [], [], secret), counter)))
    outputs.append(outcome(lambda: llmr.trim(
        {}, llmr.TrimInput(secret, [], [{"role": secret, "content": secret}], secret), counter)))
    outputs.append(outcome(lambda: counter.count_text(secret)))
    outputs.append(outcome(lambda: counter.count_messages([{"role": "user", "content": secret}])))
    failure = llmr.Classification(
        kind=llmr.ErrorKind.CONTEXT_OVERFLOW, retryable=False, retry_after_ms=None,
        limit_tokens=1000, requested_tokens=1200, provider=secret, code=secret,
        error_type=secret, message=secret)
    with llmr.RetryPolicy(plugin=plugin) as policy:
        outputs.append(outcome(lambda: llmr.next_budget(failure, {}, 1100, policy)))
        outputs.append(outcome(lambda: llmr.next_budget(
            llmr.Classification(llmr.ErrorKind.AUTH, False, None, None, None, secret, secret,
                                secret, secret), {}, 1100, policy)))
    outputs.append(outcome(lambda: llmr.Calibration.restore(secret, plugin=plugin)))
    with llmr.Calibration(plugin=plugin) as calibration:
        outputs.append(calibration.observe(secret, 1000, 1100))
        outputs.append(calibration.ratio(secret))
        outputs.append(calibration.adjust(secret, 1000))
    counter.close()
    assert_clean("trim / next_budget / counters", outputs)
    # The messages to send are the caller's texts, unchanged or cut: never rewritten.
    sent = {m.content for m in trimmed_messages}
    assert secret in sent
