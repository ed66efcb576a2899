"""The matrix: one test, parametrized by the plugin over (model, loading path, override)."""

import pytest

from compat_tests.scenario import Scenario
from compat_tests.session import MatrixSession


def test_scenario(scenario: Scenario, matrix_session: MatrixSession) -> None:
    result = matrix_session.run(scenario)
    matrix_session.record(result)
    if result.status == "skipped":
        pytest.skip(result.message)
    if result.status != "passed":
        pytest.fail(f"[{result.signature}] {result.message}", pytrace=False)
