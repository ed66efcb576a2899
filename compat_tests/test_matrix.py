"""The matrix: one test, parametrized by the plugin over (model, loading path, override)."""

import pytest

from compat_tests.core.result import Result
from compat_tests.core.scenario import Scenario
from compat_tests.run.session import MatrixSession
from compat_tests.signatures.known_failures import Baseline


@pytest.fixture
def result(scenario: Scenario, matrix_session: MatrixSession, known_failures_baseline: Baseline) -> Result:
    """The cell, run and recorded. It runs while the test is set up, so a cell that could not run at all (an
    unknown model, a source timm cannot build, a harness bug) is an error in pytest's own summary, as in ours."""
    result = matrix_session.verdict(scenario, known_failures_baseline)
    matrix_session.record(result)
    if result.status == "error":
        pytest.fail(f"[{result.signature}] {result.message}", pytrace=False)
    return result


def test_scenario(result: Result, request: pytest.FixtureRequest) -> None:
    if result.status == "skipped":
        pytest.skip(result.message)
    known = result.known
    if result.status == "xfailed":
        pytest.xfail(f"[{result.signature}] known failure: {known['reason']} (upstream: {known['upstream']})")
    if result.status == "xpassed":
        # A non-strict xfail mark added during the call makes pytest report XPASS (and keeps the exit status 0).
        request.node.add_marker(pytest.mark.xfail(
            reason=f"fixed upstream, remove the known-failures entry id={known['id']!r} "
                   f"signature={known['signature']!r}", strict=False))
        return
    if result.status != "passed":
        pytest.fail(f"[{result.signature}] {result.message}", pytrace=False)
