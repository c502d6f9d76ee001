"""Loading and running the step-table conformance vectors (``tests/vectors/{breaker,ratelimit,
retry}.json``) through the Python API.

Each file's ``description`` gives its format; ``core/tests/step_vectors.rs`` is the reference
runner, and this one interprets every op the same way: an ``expect`` object matches when every
field it names has the same value in the result (recursively), anything else must be equal.
``snapshot_restore`` restores into a *new* :class:`Plugin` (a fresh component instance), so the
vectors also prove that state survives a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import llm_resilience as llmr
from vector_cases import VECTORS_DIR

#: The step-table capabilities, in the order their summary lines are printed.
CAPABILITIES = ("breaker", "ratelimit", "retry")

#: The names under which a vector file may say this surface cannot express a case.
SURFACES = ("python",)


@dataclass
class StepCase:
    """One case of a step-table file, or the error that kept the file from loading."""

    capability: str
    id: str
    case: Optional[dict[str, Any]] = None
    load_error: Optional[str] = None
    skip_reason: Optional[str] = None


def load_step_cases() -> list[StepCase]:
    """Every case of the three files; a missing or unreadable file is one failing case."""
    cases: list[StepCase] = []
    for capability in CAPABILITIES:
        path = VECTORS_DIR / f"{capability}.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            file_cases = doc["cases"]
            if not isinstance(file_cases, list):
                raise ValueError("'cases' is not a list")
            if not file_cases:
                raise ValueError("the file holds no cases")
        except (OSError, ValueError, KeyError, TypeError) as e:
            cases.append(StepCase(capability, f"{capability}:load", load_error=f"{path}: {e!r}"))
            continue
        seen: dict[str, int] = {}
        for i, case in enumerate(file_cases):
            name = case.get("name") if isinstance(case, dict) else None
            name = name if isinstance(name, str) and name else f"case{i}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            skip = case.get("skip") if isinstance(case, dict) else None
            reason = None
            if isinstance(skip, dict):
                reason = next((str(skip[s]) for s in SURFACES if s in skip), None)
            cases.append(StepCase(capability, f"{capability}:{name}", case=case, skip_reason=reason))
    return cases


def matches(expect: Any, got: Any) -> bool:
    """``expect`` matches ``got`` when every field ``expect`` names has the same value in
    ``got`` (recursively for objects; a missing field is ``None``); other values must be equal,
    as the core's runner says."""
    if isinstance(expect, dict) and isinstance(got, dict):
        return all(matches(v, got.get(k)) for k, v in expect.items())
    return same(expect, got)


def same(a: Any, b: Any) -> bool:
    """JSON equality: a ``true`` is never the number 1, ``null`` only equals ``null``."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    return a == b


class StepFailure(AssertionError):
    """A step's result did not match its ``expect``."""


def _check(i: int, step: dict[str, Any], got: Any) -> None:
    expect = step.get("expect")
    if not matches(expect, got):
        raise StepFailure(
            f"step {i} ({step.get('op')} at {step.get('now_ms', 0)} ms): expected "
            f"{json.dumps(expect)}, got {json.dumps(got)}"
        )


def _now(step: dict[str, Any]) -> int:
    return int(step.get("now_ms") or 0)


# ---- breaker ----------------------------------------------------------------------------


def transition_json(t: Optional[llmr.Transition]) -> Optional[dict[str, str]]:
    return None if t is None else {"from": t.from_.value, "to": t.to.value}


def admission_json(a: llmr.Admission) -> dict[str, Any]:
    if isinstance(a, llmr.Admitted):
        return {"admitted": True, "probe": a.permit.probe}
    return {"admitted": False, "state": a.state.value, "retry_in_ms": a.retry_in_ms}


def recorded_json(r: llmr.Recorded) -> dict[str, Any]:
    if isinstance(r, llmr.Counted):
        return {"recorded": "counted", "transition": transition_json(r.transition)}
    return {"recorded": "stale", "transition": None}


def outcome_of(spec: dict[str, Any]) -> llmr.Outcome:
    name = spec.get("outcome")
    if name == "success":
        return llmr.Success()
    if name == "ignored":
        return llmr.Ignored()
    if name == "failure":
        return llmr.Failure(llmr.ErrorKind(spec["kind"]), spec.get("retry_after_ms"))
    raise ValueError(f"unknown outcome {spec!r}")


def run_breaker_case(plugin: llmr.Plugin, case: dict[str, Any]) -> None:
    config = case.get("config") or {}
    max_keys = case.get("max_keys")
    b: Union[llmr.Breaker, llmr.BreakerSet]
    if max_keys is not None:
        b = llmr.BreakerSet(config, max_keys, plugin=plugin)
    else:
        b = llmr.Breaker(config, plugin=plugin)
    permits: dict[str, llmr.Permit] = {}
    for i, step in enumerate(case.get("steps") or []):
        t = _now(step)
        op = step.get("op")
        key = step.get("key", "")
        got: Any
        if op == "acquire":
            a = b.acquire(key, t) if isinstance(b, llmr.BreakerSet) else b.acquire(t)
            if isinstance(a, llmr.Admitted) and step.get("permit"):
                permits[step["permit"]] = a.permit
            got = admission_json(a)
        elif op == "record":
            permit = permits[step["permit"]]
            outcome = outcome_of(step.get("outcome") or {})
            r = (b.record(key, permit, outcome, t) if isinstance(b, llmr.BreakerSet)
                 else b.record(permit, outcome, t))
            got = recorded_json(r)
        elif op == "state":
            got = b.state(key, t) if isinstance(b, llmr.BreakerSet) else b.state(t)
            got = None if got is None else got.value
        elif op == "counts":
            if not isinstance(b, llmr.Breaker):
                raise StepFailure(f"step {i}: counts needs a single breaker")
            c = b.counts(t)
            got = {**c.__dict__, "state": c.state.value}
        elif op in ("force_open", "disable", "reset"):
            if not isinstance(b, llmr.Breaker):
                raise StepFailure(f"step {i}: switches need a single breaker")
            got = transition_json(getattr(b, op)(t))
        elif op == "snapshot_restore":
            snapshot = b.snapshot()
            b.close()
            b = type(b).restore(snapshot, plugin=llmr.Plugin(plugin.path))
            continue
        elif op == "keys":
            if not isinstance(b, llmr.BreakerSet):
                raise StepFailure(f"step {i}: keys needs a set")
            got = b.keys()
        else:
            raise StepFailure(f"step {i}: unknown op {op!r}")
        _check(i, step, got)
    b.close()


# ---- ratelimit --------------------------------------------------------------------------


def run_ratelimit_case(plugin: llmr.Plugin, case: dict[str, Any]) -> None:
    limiter = llmr.RateLimiter(case.get("config") or {}, plugin=plugin)
    for i, step in enumerate(case.get("steps") or []):
        t = _now(step)
        op = step.get("op")
        key = step.get("key", "")
        got: Any
        if op == "check":
            try:
                v = limiter.check(key, step.get("units", 0), t)
            except llmr.LimitError as e:
                got = {"error": e.code}
            else:
                got = ({"verdict": "allowed", "remaining": v.remaining} if isinstance(v, llmr.Allowed)
                       else {"verdict": "denied", "retry_in_ms": v.retry_in_ms})
        elif op == "settle":
            limiter.settle(key, step.get("reserved", 0), step.get("actual", 0), t)
            continue
        elif op == "block_until":
            limiter.block_until(key, step.get("until_ms", 0), t)
            continue
        elif op == "remaining":
            got = limiter.remaining(key, t)
        elif op == "len":
            got = len(limiter)
        elif op == "snapshot_restore":
            snapshot = limiter.snapshot()
            limiter.close()
            limiter = llmr.RateLimiter.restore(snapshot, plugin=llmr.Plugin(plugin.path))
            continue
        else:
            raise StepFailure(f"step {i}: unknown op {op!r}")
        _check(i, step, got)
    limiter.close()


# ---- retry ------------------------------------------------------------------------------


def reason_json(r: llmr.GiveUpReason) -> dict[str, Any]:
    out: dict[str, Any] = {"reason": r.code.value}
    for name, value in r.__dict__.items():
        out[name] = value.value if isinstance(value, llmr.ErrorKind) else value
    return out


def decision_json(d: llmr.Decision) -> dict[str, Any]:
    if isinstance(d, llmr.Retry):
        return {"decision": "retry", "after_ms": d.after_ms, "attempt": d.attempt}
    if isinstance(d, llmr.ShrinkContext):
        return {"decision": "shrink-context", "target_tokens": d.target_tokens,
                "after_ms": d.after_ms, "attempt": d.attempt}
    return {"decision": "give-up", "reason": reason_json(d.reason)}


def failure_of(spec: dict[str, Any]) -> llmr.Classification:
    return llmr.Classification(
        kind=llmr.ErrorKind(spec["kind"]),
        retryable=bool(spec.get("retryable", False)),
        retry_after_ms=spec.get("retry_after_ms"),
        limit_tokens=spec.get("limit_tokens"),
        requested_tokens=spec.get("requested_tokens"),
        provider=None,
        code=None,
        error_type=None,
        message="",
    )


def run_retry_case(plugin: llmr.Plugin, case: dict[str, Any]) -> None:
    with llmr.RetryPolicy(case.get("config") or {}, plugin=plugin) as policy, \
            llmr.RetryBudget(case.get("budget") or {}, plugin=plugin) as budget:
        calls: dict[str, llmr.RetryCall] = {}
        for i, step in enumerate(case.get("steps") or []):
            t = _now(step)
            op = step.get("op")
            got: Any
            if op == "start_call":
                calls[step["call"]] = policy.start_call(t, step.get("seed", 0), budget)
                continue
            if op == "deposit":
                budget.deposit(t)
                continue
            if op == "budget_available":
                got = budget.available(t)
            elif op == "decide":
                call = calls.get(step.get("call", ""))
                if call is None:
                    raise StepFailure(f"step {i}: decide on an unknown call")
                got = decision_json(policy.decide(call, failure_of(step["failure"]), t,
                                                  step.get("request_tokens")))
                between = (step.get("expect") or {}).get("after_ms_between")
                if isinstance(between, list) and len(between) == 2:
                    after = got.get("after_ms")
                    inside = isinstance(after, int) and between[0] <= after <= between[1]
                    got["after_ms_between"] = between if inside else after
            else:
                raise StepFailure(f"step {i}: unknown op {op!r}")
            _check(i, step, got)
        for call in calls.values():
            call.close()


RUNNERS: dict[str, Callable[[llmr.Plugin, dict[str, Any]], None]] = {
    "breaker": run_breaker_case,
    "ratelimit": run_ratelimit_case,
    "retry": run_retry_case,
}
