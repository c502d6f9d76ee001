"""Every case of ``tests/vectors/{breaker,ratelimit,retry}.json``, run through the component."""

from __future__ import annotations

import pytest

import llm_resilience as llmr
from step_cases import CAPABILITIES, RUNNERS, StepCase, load_step_cases
from vector_cases import VECTORS_DIR

CASES = load_step_cases()


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_step_vectors_are_loaded(capability: str) -> None:
    """Fails when a file is missing or holds no cases: there would be nothing to check."""
    cases = [c for c in CASES if c.capability == capability and c.load_error is None]
    assert cases, f"{VECTORS_DIR / (capability + '.json')} holds no cases"


if CASES:  # (with no cases, the test above fails; no empty parameter set is skipped)

    @pytest.mark.parametrize("vector", CASES, ids=[c.id for c in CASES])
    def test_step_vector(vector: StepCase) -> None:
        """One step table: every step's result matches its ``expect``."""
        if vector.load_error is not None:
            pytest.fail(f"cannot load vector file: {vector.load_error}")
        if vector.skip_reason is not None:
            pytest.skip(f"the vector file says Python cannot express this case: {vector.skip_reason}")
        assert vector.case is not None
        # A plugin per case (instantiating takes about a millisecond): a failing case cannot
        # leave handles behind for the next one.
        plugin = llmr.Plugin()
        RUNNERS[vector.capability](plugin, vector.case)
        # Every handle the case created was closed.
        assert plugin.live_resources == 0
