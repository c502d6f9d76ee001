"""Shared fixtures, and the vector summary line printed at the end of the session."""

from __future__ import annotations

import pytest

import llm_resilience as llmr

VECTOR_TEST = "test_vectors.py::test_classify_vector["

_counts = {"passed": 0, "failed": 0, "skipped": 0}


@pytest.fixture(scope="session")
def plugin() -> llmr.Plugin:
    """One plugin shared by the tests that do not need limits of their own."""
    return llmr.Plugin()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts the outcome of each vector case (a setup error counts as a failure)."""
    if VECTOR_TEST not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _counts["failed" if report.failed else report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints ``[python] classify vectors: N passed, M failed`` (and skipped, if any)."""
    line = f"[python] classify vectors: {_counts['passed']} passed, {_counts['failed']} failed"
    if _counts["skipped"]:
        line += f", {_counts['skipped']} skipped"
    terminalreporter.write_line(line)
