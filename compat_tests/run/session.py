"""Per-process state of a matrix run: its id, the source-model cache, and where results go."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..core import result as results
from ..core.scenario import Scenario
from ..signatures.known_failures import Baseline
from ..source.models import SourceCache
from .runner import behind_known, run_scenario


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


@dataclass
class MatrixSession:
    run_id: str
    report: Path
    # Reasons to skip a model without running it (e.g. over the --max-params budget).
    skip_models: dict[str, str] = field(default_factory=dict)
    cache: SourceCache = field(default_factory=SourceCache)
    # The id of the last cell whose result was written, so a cell cut short (timeout) can be told apart.
    last_recorded: str = ""

    def run(self, scenario: Scenario) -> results.Result:
        if scenario.model in self.skip_models:
            return results.Result.for_scenario(scenario, "skipped", self.run_id,
                                               message=self.skip_models[scenario.model])
        return run_scenario(scenario, self.cache, self.run_id)

    def verdict(self, scenario: Scenario, baseline: Baseline) -> results.Result:
        """The cell run and judged against the baseline. A failure the baseline knows, whose entry names a
        workaround, is run again with it applied: the cell is xfailed only when the known failure is all that
        is wrong, and a second failure behind it is a new failure under its own signature."""
        result = self.run(scenario)
        entry = baseline.expected(result.id, result.signature, result.versions) if result.status == "failed" else None
        if entry is not None and entry.workaround_name:
            behind = run_scenario(scenario, self.cache, self.run_id, workaround=entry.workaround_name)
            result = behind_known(result, behind, entry.workaround_name)
        return baseline.apply(result)

    def record(self, result: results.Result) -> None:
        results.append(self.report, result)
        self.last_recorded = result.id
