"""Progress on long runs: on the controller, every `every` seconds, how many scenarios are done, how many remain
and about how long that takes. A pytest plugin object the matrix plugin registers.

The estimate sums what each remaining cell took in the last complete run (cells it did not have count as the
mean of this run's cells of the same model, else of all its cells), scaled by how this run's wall time has
compared with its cells' own time so far (source builds, collection and idle workers are outside any cell).
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from .isolation import scenario_id_from_nodeid


class Progress:
    def __init__(self, config: pytest.Config, every: float, expected: dict[str, float]) -> None:
        self.config, self.every, self.expected = config, every, expected
        self.total: int | None = None
        self.remaining: set[str] = set()
        self.done = 0
        self.spent: dict[str, float] = defaultdict(float)  # per cell id: seconds in setup, call and teardown
        self.finished: dict[str, float] = {}
        self.started = self.last = time.monotonic()

    def planned(self, ids: list[str]) -> None:
        if self.total is None:
            self.total, self.remaining = len(ids), set(ids)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.total is None and session.items:  # without xdist; with it, XdistHooks calls planned()
            self.planned([scenario_id_from_nodeid(item.nodeid) for item in session.items])

    def estimate_s(self, now: float) -> float:
        """Seconds until the remaining cells are done."""
        by_model: dict[str, list[float]] = defaultdict(list)
        for cell, seconds in self.finished.items():
            by_model[cell.split("-", 1)[0]].append(seconds)
        overall = sum(self.finished.values()) / max(1, len(self.finished))

        def cost(cell: str) -> float:
            if cell in self.expected:
                return self.expected[cell]
            same = by_model.get(cell.split("-", 1)[0])
            return sum(same) / len(same) if same else overall

        # How much wall time each second inside a cell has cost this run so far (all workers together).
        ran = sum(self.expected.get(c, s) for c, s in self.finished.items()) or 1.0
        return (now - self.started) / ran * sum(cost(c) for c in self.remaining)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        cell = scenario_id_from_nodeid(report.nodeid)
        self.spent[cell] += report.duration
        if report.when != "teardown":
            return
        self.done += 1
        self.finished[cell] = self.spent.pop(cell, 0.0)
        self.remaining.discard(cell)
        now = time.monotonic()
        if not self.total or now - self.last < self.every or self.done >= self.total:
            return
        self.last = now
        remain = self.total - self.done
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write("\n")  # progress dots/percentages do not end their line
            terminal.write_line(f"timm-compat: {self.done}/{self.total} scenarios done, {remain} remain "
                                f"(~{self.estimate_s(now) / 60:.1f} min left)")
