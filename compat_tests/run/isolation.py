"""Cells that kill their process or run too long still get a result, and the run goes on.

Under xdist (`-n`), a worker that segfaults or is OOM-killed is replaced by xdist and the controller
is told which test it was running: that cell is recorded as `crash`. pytest-timeout (`--timeout`)
interrupts a hanging cell with an exception the runner deliberately does not catch: the cell is
recorded as `timeout` here. Without `-n` a crash takes the whole process down; `--resume` then
continues after the cells already recorded.

A model that killed a worker once is not built again: the controller notes the crash in the run's side folder
(`runs/<run id>.d/crashed.jsonl`) before xdist starts the replacement, and every worker reads the note before
each cell, so the model's remaining cells are recorded as `crash` too, each pointing at the cell that died.
Running them instead (alone, with the whole machine) would rebuild the model in a fresh worker for each cell,
and what kills a worker once is mostly a model too big for the memory left (which the memory check now refuses
up front when it can tell) or a native crash in its code, both of which would kill the next worker alike: the
run would pay the build and a worker restart per cell to learn the same thing. The record says how to run the
model alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ..core import result as results
from ..core.evidence import Evidence
from ..core.scenario import Scenario, parse_id
from ..signatures.catalog import classify
from .memory import model_need, next_that_fits, parse_size, planned
from .selection import MetaFigures, Store, fp32_bytes_meta
from .workdirs import available_bytes, sweep

# Above this many models whose sizes are not stored yet, counting them would cost the controller minutes of
# meta builds.
RANK_BY_SIZE_MAX = 200


def model_sizes(groups: list[str], store: Store | None = None) -> dict[str, int]:
    """Each model's float32 bytes, counted on the meta device once per timm release and kept in `store` (pytest's
    cache); {} for more than RANK_BY_SIZE_MAX models not all stored yet."""
    sizes = MetaFigures(store, "fp32-bytes", fp32_bytes_meta)
    if len(groups) > RANK_BY_SIZE_MAX and not sizes.known(groups):
        return {}
    found = {g: sizes(g) or 0 for g in groups}
    sizes.save()
    return found


def _largest_first(groups: list[str], report: Path | None, sizes: dict[str, int]) -> list[str]:
    """Models (xdist groups) in the order the run should start them: the longest first, so that no worker is
    left alone with a big model at the end. Cost is what the model's cells took in the last complete run, else
    its size (`model_sizes`); with neither the order stays."""
    spent = results.seconds_by_model(report) if report is not None else {}
    cost: dict[str, float] = spent if spent and all(g in spent for g in groups) else dict(sizes)
    if not cost:
        return groups
    return sorted(groups, key=lambda g: -cost.get(g, 0.0))


def _crash_safe_loadgroup(on_crash: Callable[[str, str], None] = lambda cell, worker: None,
                          last_report: Path | None = None, budget: int | None = None):
    """xdist 3.8's loadgroup scheduler with the crash-recovery fixes it lacks (pytest-xdist#1362, #1323,
    both open upstream): a dead worker's collection is forgotten, the cell it died in is never handed out
    again (it is reported as the crash), and groups with nothing left to run are not queued again.

    It also groups the matrix's cells by model itself: xdist 3.8 marks a group by rewriting `item._nodeid`, which
    pytest 9 no longer reads (a node's id is `_id`), so every cell was its own group and a model's cells were
    spread over the workers, each building the model again. `on_crash(cell id, worker id)` hears a crash before
    the dead worker's other cells are handed out again.

    Models are queued largest first (`_largest_first`, from `last_report`'s durations or the models' sizes), and
    each worker is handed the first model whose cells fit in memory beside the models the other workers hold
    (`memory.next_that_fits`): two models too big to share the machine then run one after the other on either
    worker while the other runs smaller ones, instead of side by side with each worker waiting at its cells'
    memory gate for the other. `budget` is --memory-budget, which caps the memory the cells may count on."""
    from xdist.scheduler import LoadGroupScheduling

    class CrashSafeLoadGroupScheduling(LoadGroupScheduling):
        def __init__(self, config: pytest.Config, log=None) -> None:
            super().__init__(config, log)
            self.ranked = False
            self.needs: dict[str, int] = {}  # model -> the most its cells hold at once
            self.capacity = 0
            self.shared = 0  # what models are paired in (memory.planned)

        def _rank(self) -> None:
            groups = [scope for scope, unit in self.workqueue.items()
                      if any("::test_scenario[" in nodeid for nodeid in unit)]
            sizes = model_sizes(groups, getattr(self.config, "cache", None))
            ranked = _largest_first(groups, last_report, sizes)
            rest = [scope for scope in self.workqueue if scope not in ranked]  # not matrix cells: keep last
            queue = {scope: self.workqueue[scope] for scope in [*ranked, *rest]}
            self.workqueue.clear()
            self.workqueue.update(queue)
            # Measured before any cell runs (the workers hold only what their imports took), and capped by the
            # budget as the cells' memory gate caps it.
            available = available_bytes()
            self.capacity = available if budget is None else min(available, budget)
            self.shared = planned(available, budget)
            for group in groups:
                parsed = [parse_id(scenario_id_from_nodeid(nodeid)) for nodeid in self.workqueue[group]]
                paths = [p.path for p in parsed if p is not None and not p.meta]
                self.needs[group] = model_need(paths, sizes.get(group), self.capacity, self.shared)

        def _held_elsewhere(self, node) -> int:
            """What the models assigned to the other workers, not finished, will hold: each worker runs its
            models one after another, so its largest."""
            return sum(max((self.needs.get(scope, 0) for scope, unit in work.items() if not all(unit.values())),
                           default=0)
                       for other, work in self.assigned_work.items() if other is not node)

        def _assign_work_unit(self, node) -> None:
            if not self.ranked:  # the queue is complete on the first assignment
                self.ranked = True
                self._rank()
            if len(self.workqueue) > 1 and any(self.needs.values()):
                # Paired by the planned share: beside a model using most of the machine, one that fits by the figure
                # measured before the run would wait at its gate for each of the big model's cells.
                choice = next_that_fits(list(self.workqueue), self.needs, self._held_elsewhere(node), self.shared)
                self.workqueue.move_to_end(choice, last=False)
            super()._assign_work_unit(node)

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]") or "::test_scenario[" not in nodeid:
                return super()._split_scope(nodeid)
            parsed = parse_id(scenario_id_from_nodeid(nodeid))
            return parsed.model if parsed else nodeid

        def remove_node(self, node):
            workload = self.assigned_work.get(node, {})
            crashitem = next((nid for unit in workload.values() for nid, done in unit.items() if not done), None)
            if crashitem is None:
                # A worker leaving with its work done (loadscope shuts idle workers down one by one): its
                # collection must stay counted, or tests_finished never turns true and the run cannot end.
                return super().remove_node(node)
            on_crash(scenario_id_from_nodeid(crashitem), getattr(getattr(node, "gateway", None), "id", "?"))
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
         output_tail: str = "", **seen: str) -> results.Result:
    """Record that the process running `result`'s scenario died or ran out of time, as that scenario's result.

    Whatever observed it (xdist replacing a worker, pytest-timeout) passes what it saw; the `crash`/`timeout`
    signatures read it back from the evidence, so old reports re-classify alike.
    """
    evidence = Evidence(extra={"process": {"returncode": returncode, "timeout_s": timeout_s,
                                           "output_tail": output_tail[-4000:], **seen}})
    evidence.extra_failure = True
    result.status = "failed"
    result.evidence = evidence.to_json()
    result.signature, result.message = classify(evidence, result.path)
    return result


def _record(report_path: Path, run_id: str, scenario_id: str, *, returncode: int | None = None,
            timeout_s: float | None = None, output_tail: str = "") -> None:
    result = results.Result.for_scenario(scenario_id, "failed", run_id)
    results.append(report_path, died(result, returncode=returncode, timeout_s=timeout_s, output_tail=output_tail))


CRASHED = "crashed.jsonl"


def note_crash(side: Path, cell: str, worker: str) -> None:
    """Say, for the run's workers, that `cell` killed `worker` (one line, appended in one write)."""
    parsed = parse_id(cell)
    line = {"model": parsed.model if parsed else cell, "cell": cell, "worker": worker}
    side.mkdir(parents=True, exist_ok=True)
    fd = os.open(side / CRASHED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def crashed_models(side: Path) -> dict[str, dict[str, str]]:
    """Model -> the first crash it caused in this run ({"cell", "worker"}); {} when none did."""
    try:
        text = (side / CRASHED).read_text(encoding="utf-8")
    except OSError:
        return {}
    first: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        try:
            note = json.loads(line)
        except ValueError:
            continue  # a torn line from a controller killed mid-write
        first.setdefault(note.get("model", ""), note)
    return first


def not_run_after_crash(scenario: Scenario, run_id: str, first: dict[str, str]) -> results.Result:
    """A cell of a model that killed a worker earlier in the run, recorded as that crash without building it."""
    why = (f"not run: {scenario.model} killed xdist worker {first.get('worker', '?')} in {first.get('cell', '?')} "
           "(recorded there as crash); its other cells are recorded as crash too instead of rebuilding the model "
           "in a new worker for each, which would die alike. To run them alone: "
           f"pytest compat_tests --models {scenario.model} -p no:xdist")
    result = died(results.Result.for_scenario(scenario, "failed", run_id), output_tail=why,
                  first_crash=first.get("cell", ""))
    result.message = why  # the catalog's "the process died" is not what happened to this cell
    return result


class Isolation:
    """Registered by the matrix plugin; `run_id` is read late because xdist workers learn it at configure."""

    def __init__(self, report_path: Path, run_id: Callable[[], str]) -> None:
        self.report_path = report_path
        self.run_id = run_id
        self._noted: set[str] = set()  # crashed cells already in the run's crash notes

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") == "loadgroup":
            last = self.report_path.parent.parent / results.REPORT_NAME
            budget = config.getoption("memory_budget", None)
            return _crash_safe_loadgroup(self._note, last if last.is_file() else None,
                                         parse_size(budget) if budget is not None else None)(config, log)
        return None

    def _note(self, cell: str, worker: str) -> None:
        if cell not in self._noted:
            self._noted.add(cell)
            note_crash(results.side_dir(self.report_path), cell, worker)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        sweep()  # the dead worker's cell folder (in RAM) is the controller's to remove
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        cell = scenario_id_from_nodeid(crashitem)
        # Under loadgroup the scheduler noted it already, before handing the model's other cells out again.
        self._note(cell, worker)
        _record(self.report_path, self.run_id(), cell,
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
