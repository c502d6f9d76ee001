"""Every case of every ``tests/vectors/classify*.json`` file, run through the component."""

from __future__ import annotations

import pytest

import llm_resilience as llmr
from vector_cases import VECTORS_DIR, VectorCase, load_cases, run_case, vector_files

CASES = load_cases()


def test_vectors_are_loaded() -> None:
    """Fails when there is nothing to check: no file, or files without cases."""
    assert vector_files(), f"no classify*.json in {VECTORS_DIR}"
    assert CASES, f"the classify*.json files in {VECTORS_DIR} hold no cases"


if CASES:  # (with no cases, test_vectors_are_loaded fails; no empty parameter set is skipped)

    @pytest.mark.parametrize("vector", CASES, ids=[c.id for c in CASES])
    def test_classify_vector(plugin: llmr.Plugin, vector: VectorCase) -> None:
        """One vector case: the component's classification matches its `expect`."""
        if vector.load_error is not None:
            pytest.fail(f"cannot load vector file: {vector.load_error}")
        if vector.skip_reason is not None:
            pytest.skip(f"the vector file says Python cannot express this case: {vector.skip_reason}")
        assert vector.case is not None
        got, problems = run_case(plugin, vector.case)
        assert not problems, f"{vector.id}: " + "; ".join(problems) + f"\n got: {got!r}"
