"""Every case of ``tests/vectors/context.json`` and ``credits.json``, run through the component."""

from __future__ import annotations

import pytest

import llm_resilience as llmr
from budget_cases import (
    BudgetCase,
    load_context_cases,
    load_credits_cases,
    run_credits_case,
    run_next_budget_case,
    run_trim_case,
)

CONTEXT = load_context_cases()
CREDITS = load_credits_cases()


@pytest.fixture(scope="module")
def upper_bound(plugin: llmr.Plugin) -> llmr.TokenCounter:
    """The counter the context vectors are written for."""
    with llmr.TokenCounter.upper_bound(plugin=plugin) as counter:
        yield counter


@pytest.mark.parametrize("cases", [CONTEXT, CREDITS], ids=["context", "credits"])
def test_budget_vectors_are_loaded(cases: list[BudgetCase]) -> None:
    """Fails when a file is missing or holds no cases: there would be nothing to check."""
    assert [c for c in cases if c.load_error is None], cases[0].load_error if cases else "no cases"


def _guard(vector: BudgetCase) -> None:
    if vector.load_error is not None:
        pytest.fail(f"cannot load vector file: {vector.load_error}")
    if vector.skip_reason is not None:
        pytest.skip(f"the vector file says Python cannot express this case: {vector.skip_reason}")


@pytest.mark.parametrize("vector", CONTEXT, ids=[c.id for c in CONTEXT])
def test_context_vector(
    plugin: llmr.Plugin, upper_bound: llmr.TokenCounter, vector: BudgetCase
) -> None:
    """One trim or next-budget case: the result (or the typed error) matches its expectation."""
    _guard(vector)
    assert vector.case is not None
    if vector.kind == "next_budget":
        run_next_budget_case(plugin, vector.case)
    else:
        run_trim_case(upper_bound, vector.case)


@pytest.mark.parametrize("vector", CREDITS, ids=[c.id for c in CREDITS])
def test_credits_vector(vector: BudgetCase) -> None:
    """One credits step table: every step's result matches its ``expect``."""
    _guard(vector)
    assert vector.case is not None
    # A plugin per case: a failing case cannot leave a monitor behind for the next one.
    plugin = llmr.Plugin()
    run_credits_case(plugin, vector.case)
    assert plugin.live_resources == 0
