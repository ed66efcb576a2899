"""Cells that kill their process or run too long still get a result, and the run goes on.

Under xdist (`-n`), a worker that segfaults or is OOM-killed is replaced by xdist and the controller
is told which test it was running: that cell is recorded as `crash`. pytest-timeout (`--timeout`)
interrupts a hanging cell with an exception the runner deliberately does not catch: the cell is
recorded as `timeout` here. Without `-n` a crash takes the whole process down; `--resume` then
continues after the cells already recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ..core import result as results
from ..core.evidence import Evidence
from ..signatures.catalog import classify
from .workdirs import sweep


def _crash_safe_loadgroup():
    """xdist 3.8's loadgroup scheduler with the crash-recovery fixes it lacks (pytest-xdist#1362, #1323,
    both open upstream): a dead worker's collection is forgotten, the cell it died in is never handed out
    again (it is reported as the crash), and groups with nothing left to run are not queued again."""
    from xdist.scheduler import LoadGroupScheduling

    class CrashSafeLoadGroupScheduling(LoadGroupScheduling):
        def remove_node(self, node):
            workload = self.assigned_work.get(node, {})
            crashitem = next((nid for unit in workload.values() for nid, done in unit.items() if not done), None)
            if crashitem is None:
                # A worker leaving with its work done (loadscope shuts idle workers down one by one): its
                # collection must stay counted, or tests_finished never turns true and the run cannot end.
                return super().remove_node(node)
            self.registered_collections.pop(node, None)
            for unit in workload.values():
                if crashitem in unit:
                    unit[crashitem] = True
            for scope in [scope for scope, unit in workload.items() if all(unit.values())]:
                del workload[scope]
            super().remove_node(node)
            return crashitem

    return CrashSafeLoadGroupScheduling


def scenario_id_from_nodeid(nodeid: str) -> str:
    """'compat_tests/test_matrix.py::test_scenario[m-p-o@m]' -> 'm-p-o' (xdist adds '@group', the model's
    name; a structural id keeps its own '@meta')."""
    inside = nodeid.partition("[")[2].removesuffix("]")
    group = "@" + inside.split("-", 1)[0]
    return inside.removesuffix(group) if inside.endswith(group) else inside


def died(result: results.Result, *, returncode: int | None = None, timeout_s: float | None = None,
         output_tail: str = "") -> results.Result:
    """Record that the process running `result`'s scenario died or ran out of time, as that scenario's result.

    Whatever observed it (xdist replacing a worker, pytest-timeout) passes what it saw; the `crash`/`timeout`
    signatures read it back from the evidence, so old reports re-classify alike.
    """
    evidence = Evidence(extra={"process": {"returncode": returncode, "timeout_s": timeout_s,
                                           "output_tail": output_tail[-4000:]}})
    evidence.extra_failure = True
    result.status = "failed"
    result.evidence = evidence.to_json()
    result.signature, result.message = classify(evidence, result.path)
    return result


def _record(report_path: Path, run_id: str, scenario_id: str, *, returncode: int | None = None,
            timeout_s: float | None = None, output_tail: str = "") -> None:
    result = results.Result.for_scenario(scenario_id, "failed", run_id)
    results.append(report_path, died(result, returncode=returncode, timeout_s=timeout_s, output_tail=output_tail))


class Isolation:
    """Registered by the matrix plugin; `run_id` is read late because xdist workers learn it at configure."""

    def __init__(self, report_path: Path, run_id: Callable[[], str]) -> None:
        self.report_path = report_path
        self.run_id = run_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") == "loadgroup":
            return _crash_safe_loadgroup()(config, log)
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        sweep()  # the dead worker's cell folder (in RAM) is the controller's to remove
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        _record(self.report_path, self.run_id(), scenario_id_from_nodeid(crashitem),
                output_tail=f"xdist worker {worker} died running {crashitem} and was replaced; the run went on")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        session = getattr(item, "funcargs", {}).get("matrix_session")
        scenario = getattr(getattr(item, "callspec", None), "params", {}).get("scenario")
        # The cell runs while its test is set up (so a harness error is a pytest error), and is judged in the call.
        if call.when in ("setup", "call") and report.failed and session is not None and scenario is not None \
                and session.last_recorded != scenario.id:
            text = str(call.excinfo.value) if call.excinfo else ""
            # pytest-timeout's failure is the only exception that escapes the runner's own handling.
            timeout = float(item.config.getoption("timeout", None) or 0) if "Timeout" in text else None
            _record(self.report_path, self.run_id(), scenario.id, timeout_s=timeout or None,
                    output_tail=text[-4000:])
            session.last_recorded = scenario.id
        return report
