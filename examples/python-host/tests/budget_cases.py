"""Loading and running the context-trimming and credit-monitoring conformance vectors
(``tests/vectors/context.json`` and ``credits.json``) through the Python API.

``core/tests/context_vectors.rs`` and ``core/tests/credits_vectors.rs`` are the reference
runners; these interpret every case the same way. Context cases count with the upper-bound
counter (``TokenCounter.upper_bound()``), as the file's description says: an ``expect`` object
matches when every field it names matches (recursively), other values (lists included) must be
equal. Credit steps compare numbers within a relative 1e-9, lists element by element, and test
``message_contains`` / ``message_excludes`` against the event's message; ``snapshot_restore``
restores into a *new* :class:`Plugin` (a fresh component instance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import llm_resilience as llmr
from step_cases import matches
from vector_cases import VECTORS_DIR

#: The names under which a vector file may say this surface cannot express a case.
SURFACES = ("python",)


@dataclass
class BudgetCase:
    """One case of ``context.json`` (a trim or a next-budget case) or ``credits.json``."""

    capability: str
    id: str
    kind: str = ""
    case: Optional[dict[str, Any]] = None
    load_error: Optional[str] = None
    skip_reason: Optional[str] = None


def _load(capability: str, lists: tuple[str, ...]) -> list[BudgetCase]:
    path = VECTORS_DIR / f"{capability}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("capability") != capability:
            raise ValueError(f"capability is {doc.get('capability')!r}")
        for name in lists:
            if not isinstance(doc.get(name), list) or not doc[name]:
                raise ValueError(f"{name!r} is missing or empty")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return [BudgetCase(capability, f"{capability}:load", load_error=f"{path}: {e!r}")]
    cases = []
    seen: dict[str, int] = {}
    for kind in lists:
        for i, case in enumerate(doc[kind]):
            name = case.get("name") if isinstance(case, dict) else None
            name = name if isinstance(name, str) and name else f"{kind}{i}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            skip = case.get("skip") if isinstance(case, dict) else None
            reason = None
            if isinstance(skip, dict):
                reason = next((str(skip[s]) for s in SURFACES if s in skip), None)
            cases.append(BudgetCase(capability, f"{capability}:{name}", kind, case, skip_reason=reason))
    return cases


def load_context_cases() -> list[BudgetCase]:
    """Every trim case (``cases``) and next-budget case (``next_budget``) of context.json."""
    return _load("context", ("cases", "next_budget"))


def load_credits_cases() -> list[BudgetCase]:
    """Every case of credits.json."""
    return _load("credits", ("cases",))


# ---- context ------------------------------------------------------------------------------


def _expect_one(case: dict[str, Any], ok: Any, error: Any) -> None:
    if ("expect" in case) == ("expect_error" in case):
        raise AssertionError("a case needs exactly one of expect and expect_error")
    if "expect" in case:
        want, got = case["expect"], {"ok": ok} if error is None else {"error": error}
        if error is not None or not matches(want, ok):
            raise AssertionError(f"expected {json.dumps(want, ensure_ascii=False)}, got "
                                 f"{json.dumps(got, ensure_ascii=False)}")
    else:
        want = case["expect_error"]
        if error is None or not matches(want, error):
            got = {"ok": ok} if error is None else {"error": error}
            raise AssertionError(f"expected error {json.dumps(want)}, got "
                                 f"{json.dumps(got, ensure_ascii=False)}")


def run_trim_case(counter: llmr.TokenCounter, case: dict[str, Any]) -> None:
    """Trims a case's input into its budget with ``counter`` and compares."""
    inp = case["input"]
    trim_input = llmr.TrimInput(
        system=inp["system"],
        documents=inp.get("documents") or (),
        history=inp.get("history") or (),
        latest=inp["latest"],
        tools=inp.get("tools") or (),
    )
    ok = error = None
    try:
        ok = llmr.trim(case["budget"], trim_input, counter).to_dict()
    except llmr.ContextError as e:
        error = e.as_dict()
    _expect_one(case, ok, error)


def run_next_budget_case(plugin: llmr.Plugin, case: dict[str, Any]) -> None:
    """Turns a case's failure into the next budget under its retry config and compares."""
    f = case["failure"]
    failure = llmr.Classification(
        kind=llmr.ErrorKind(f["kind"]),
        retryable=bool(f.get("retryable")),
        retry_after_ms=f.get("retry_after_ms"),
        limit_tokens=f.get("limit_tokens"),
        requested_tokens=f.get("requested_tokens"),
        provider=f.get("provider"),
        code=f.get("code"),
        error_type=f.get("error_type"),
        message="",
    )
    ok = error = None
    with llmr.RetryPolicy(case.get("retry") or {}, plugin=plugin) as policy:
        try:
            budget = llmr.next_budget(failure, case["current"], case.get("request_tokens"), policy)
            ok = {"limit_tokens": budget.limit_tokens(plugin=plugin),
                  "context_window": budget.context_window}
        except llmr.ContextError as e:
            error = e.as_dict()
    _expect_one(case, ok, error)


# ---- credits ------------------------------------------------------------------------------


def credits_match(expect: Any, got: Any, path: str = "") -> Optional[str]:
    """``None`` when ``got`` matches ``expect`` as core/tests/credits_vectors.rs says; else why."""
    num = (int, float)
    if (isinstance(expect, num) and not isinstance(expect, bool)
            and isinstance(got, num) and not isinstance(got, bool)):
        if math.isclose(expect, got, rel_tol=0, abs_tol=1e-9 * max(abs(expect), 1.0)):
            return None
        return f"{path}: expected {expect}, got {got}"
    if isinstance(expect, dict) and isinstance(got, dict):
        message = got.get("message") if isinstance(got.get("message"), str) else ""
        for k, v in expect.items():
            if k == "message_contains":
                for s in v:
                    if s not in message:
                        return f"{path}: message {message!r} lacks {s!r}"
            elif k == "message_excludes":
                for s in v:
                    if s in message:
                        return f"{path}: message {message!r} contains {s!r}"
            else:
                why = credits_match(v, got.get(k), f"{path}.{k}")
                if why:
                    return why
        return None
    if isinstance(expect, list) and isinstance(got, list):
        if len(expect) != len(got):
            return f"{path}: expected {len(expect)} items, got {len(got)}: {json.dumps(got)}"
        for i, (e, g) in enumerate(zip(expect, got)):
            why = credits_match(e, g, f"{path}[{i}]")
            if why:
                return why
        return None
    if type(expect) is type(got) and expect == got:
        return None
    return f"{path}: expected {json.dumps(expect)}, got {json.dumps(got)}"


def run_credits_case(plugin: llmr.Plugin, case: dict[str, Any]) -> None:
    """Runs a credits step table; raises AssertionError at the first mismatch."""
    monitor = llmr.CreditMonitor(case.get("config") or {}, plugin=plugin)
    try:
        for i, step in enumerate(case["steps"]):
            op = step.get("op")
            if op == "observe":
                key = credits = None
                if step.get("key") is not None:
                    key = llmr.parse_key(json.dumps(step["key"]), plugin=monitor.plugin)
                if step.get("credits") is not None:
                    credits = llmr.parse_credits(json.dumps(step["credits"]), plugin=monitor.plugin)
                events = monitor.observe(llmr.CreditSnapshot(key, credits), step["now_ms"],
                                         step.get("wall_clock_ms"))
                got: Any = {"alerts": [e.to_dict() for e in events],
                            "status": monitor.status().to_dict()}
            elif op == "snapshot_restore":
                snapshot = monitor.snapshot()
                monitor.close()
                monitor = llmr.CreditMonitor.restore(snapshot, plugin=llmr.Plugin(plugin.path))
                continue
            elif op == "parse_key":
                try:
                    got = llmr.parse_key(step.get("body") or "", plugin=plugin).to_dict()
                except llmr.CreditsError as e:
                    got = e.as_dict()
            elif op == "parse_credits":
                try:
                    got = llmr.parse_credits(step.get("body") or "", plugin=plugin).to_dict()
                except llmr.CreditsError as e:
                    got = e.as_dict()
            elif op == "afford":
                a = llmr.suggest_max_tokens(step.get("text") or "", plugin=plugin)
                got = None if a is None else a.to_dict()
            elif op == "new":
                try:
                    llmr.CreditMonitor(step.get("config") or {}, plugin=plugin).close()
                    got = {"ok": True}
                except llmr.ConfigError as e:
                    got = {"error": "config", "problems": len(e.problems)}
            else:
                raise AssertionError(f"step {i}: unknown op {op!r}")
            why = credits_match(step.get("expect"), got)
            if why:
                raise AssertionError(f"step {i} ({op}): {why}")
    finally:
        monitor.close()
