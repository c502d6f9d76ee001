"""Shared fixtures, and the vector summary line printed at the end of the session."""

from __future__ import annotations

from typing import Optional

import pytest

import llm_resilience as llmr

VECTOR_TEST = "test_vectors.py::test_classify_vector["
STEP_TEST = "test_step_vectors.py::test_step_vector["
CONTEXT_TEST = "test_budget_vectors.py::test_context_vector["
CREDITS_TEST = "test_budget_vectors.py::test_credits_vector["

#: Outcomes per vector file family, in the order the summary lines are printed.
_counts = {
    name: {"passed": 0, "failed": 0, "skipped": 0}
    for name in ("classify", "breaker", "ratelimit", "retry", "context", "credits")
}


@pytest.fixture(scope="session")
def plugin() -> llmr.Plugin:
    """One plugin shared by the tests that do not need limits of their own."""
    return llmr.Plugin()


def _family(nodeid: str) -> Optional[str]:
    if VECTOR_TEST in nodeid:
        return "classify"
    if CONTEXT_TEST in nodeid:
        return "context"
    if CREDITS_TEST in nodeid:
        return "credits"
    if STEP_TEST in nodeid:
        return nodeid.split(STEP_TEST, 1)[1].split(":", 1)[0]
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts the outcome of each vector case (a setup error counts as a failure)."""
    family = _family(report.nodeid)
    if family not in _counts:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _counts[family]["failed" if report.failed else report.outcome] += 1


def summary_lines() -> list[str]:
    """``[python] <family> vectors: N passed, M failed`` (and skipped, if any), per family."""
    lines = []
    for family, counts in _counts.items():
        line = f"[python] {family} vectors: {counts['passed']} passed, {counts['failed']} failed"
        if counts["skipped"]:
            line += f", {counts['skipped']} skipped"
        lines.append(line)
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints the summary line of every vector family."""
    for line in summary_lines():
        terminalreporter.write_line(line)
