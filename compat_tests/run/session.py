"""Per-process state of a matrix run: its id, the source-model cache, where results go, and the memory gate its
cells pass."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..core import result as results
from ..core.scenario import Scenario
from ..signatures.known_failures import Baseline
from ..source.models import SourceCache
from .isolation import crashed_models, not_run_after_crash
from .memory import Admission
from .runner import behind_known, run_scenario
from .selection import fp32_bytes_meta


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def _workers() -> int:
    """How many processes run this run's cells at once (xdist tells its workers)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1) if os.environ.get("PYTEST_XDIST_WORKER") else 1


@dataclass
class MatrixSession:
    run_id: str
    report: Path
    # Reasons to skip a model without running it (e.g. over the --max-params budget).
    skip_models: dict[str, str] = field(default_factory=dict)
    cache: SourceCache = field(default_factory=SourceCache)
    # The id of the last cell whose result was written, so a cell cut short (timeout) can be told apart.
    last_recorded: str = ""
    # --memory-budget in bytes: the most memory a cell may count on, below what the machine has free.
    memory_budget: int | None = None
    memory: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.memory = Admission(results.side_dir(self.report), _workers(), self.memory_budget)

    def run(self, scenario: Scenario) -> results.Result:
        if scenario.model in self.skip_models:
            return results.Result.for_scenario(scenario, "skipped", self.run_id,
                                               message=self.skip_models[scenario.model])
        return run_scenario(scenario, self.cache, self.run_id)

    def verdict(self, scenario: Scenario, baseline: Baseline) -> results.Result:
        """The cell run and judged against the baseline. A failure the baseline knows, whose entry names a
        workaround, is run again with it applied, and a known failure found behind that one, with a workaround of
        its own, again with both: the cell is xfailed only when the known failures are all that is wrong, and a
        failure behind them that no entry excuses is a new failure under its own signature.

        A model that killed a worker earlier in the run is not built again: its cell is recorded as that crash.
        A cell whose model cannot fit in the memory available to it is skipped before the model is built."""
        if scenario.model not in self.skip_models and \
                (first := crashed_models(results.side_dir(self.report)).get(scenario.model)):
            return baseline.apply(not_run_after_crash(scenario, self.run_id, first))
        if scenario.meta or scenario.model in self.skip_models:
            return self._verdict(scenario, baseline)
        model_bytes = self.cache.held_bytes(scenario.model) or fp32_bytes_meta(scenario.model)
        with self.memory.cell(scenario.path, model_bytes, lambda: self.cache.held_bytes(scenario.model),
                              self.cache.release) as refusal:
            if refusal is not None:
                return results.Result.for_scenario(scenario, "skipped", self.run_id, message=refusal)
            return self._verdict(scenario, baseline)

    def _verdict(self, scenario: Scenario, baseline: Baseline) -> results.Result:
        front = last = self.run(scenario)
        workarounds: list[str] = []
        steps: list[results.Result] = []
        # Each workaround is applied once: one that does not get past its failure ends the chain there.
        while last.status == "failed" and (entry := baseline.expected(last.id, last.signature, last.versions,
                                                                       last.message)) is not None \
                and (name := entry.workaround_name) and name not in workarounds:
            workarounds.append(name)
            last = run_scenario(scenario, self.cache, self.run_id, workarounds=workarounds)
            steps.append(last)
        return baseline.apply(behind_known(front, steps, workarounds) if steps else front)

    def record(self, result: results.Result) -> None:
        results.append(self.report, result)
        self.last_recorded = result.id
