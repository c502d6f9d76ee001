"""Loading and checking the classify conformance vectors (``tests/vectors/classify*.json``).

The schema is described in ``tests/vectors/README.md``. ``$LLMR_VECTORS_DIR`` points the tests
at another directory of vector files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import llm_resilience as llmr

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS_DIR = Path(os.environ.get("LLMR_VECTORS_DIR") or REPO_ROOT / "tests" / "vectors")

#: The names under which a vector file may say this surface cannot express a case.
SURFACES = ("python",)

INPUT_KEYS = {"status", "headers", "body", "transport", "wall_clock_ms"}
EXACT_KEYS = (
    "kind",
    "retryable",
    "retry_after_ms",
    "limit_tokens",
    "requested_tokens",
    "provider",
    "code",
    "error_type",
    "message",
)
EXPECT_KEYS = set(EXACT_KEYS) | {"message_contains", "message_excludes"}


@dataclass
class VectorCase:
    """One case of a vector file, or the error that kept a file from loading."""

    id: str
    case: Optional[dict[str, Any]] = None
    load_error: Optional[str] = None
    skip_reason: Optional[str] = None


def vector_files() -> list[Path]:
    """Every ``classify*.json`` file, sorted by name."""
    return sorted(VECTORS_DIR.glob("classify*.json"))


def load_cases() -> list[VectorCase]:
    """Every case of every classify vector file; a file that cannot be read is one failing case."""
    cases: list[VectorCase] = []
    for path in vector_files():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            file_cases = doc["cases"]
            if not isinstance(file_cases, list):
                raise ValueError("'cases' is not a list")
        except (OSError, ValueError, KeyError, TypeError) as e:
            cases.append(VectorCase(id=f"{path.name}:load", load_error=f"{path}: {e!r}"))
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
            cases.append(VectorCase(id=f"{path.stem}:{name}", case=case, skip_reason=reason))
    return cases


def run_case(plugin: llmr.Plugin, case: dict[str, Any]) -> tuple[llmr.Classification, list[str]]:
    """Classifies a case's input and returns the result with every mismatch against ``expect``."""
    inp = case.get("input") or {}
    expect = case.get("expect")
    problems: list[str] = []
    unknown = set(inp) - INPUT_KEYS
    if unknown:
        problems.append(f"unknown input keys {sorted(unknown)}")
    if not isinstance(expect, dict):
        raise AssertionError(f"case has no 'expect' object: {case!r}")
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        problems.append(f"unknown expect keys {sorted(unknown)}")
    for key in ("kind", "retryable"):
        if key not in expect:
            problems.append(f"expect lacks the required {key!r}")
    headers = inp.get("headers")
    if isinstance(headers, dict):
        headers = list(headers.items())
    got = plugin.classify(
        status=inp.get("status"),
        headers=headers,
        body=inp.get("body") or "",
        transport=inp.get("transport"),
        wall_clock_ms=inp.get("wall_clock_ms"),
    )
    for key in EXACT_KEYS:
        if key not in expect:
            continue
        value = getattr(got, key)
        if key == "kind":
            value = value.value
        if value != expect[key]:
            problems.append(f"{key}: expected {expect[key]!r}, got {value!r}")
    for needle in expect.get("message_contains") or []:
        if needle not in got.message:
            problems.append(f"message should contain {needle!r}: {got.message!r}")
    for needle in expect.get("message_excludes") or []:
        if needle in got.message:
            problems.append(f"message must not contain {needle!r}: {got.message!r}")
    return got, problems
