"""Progress on long runs: on the controller, every `every` seconds, how many scenarios are done, how many remain
and about how long that takes. A pytest plugin object the matrix plugin registers.

The estimate sums what each remaining cell took in the last complete run (cells it did not have count as the
mean of this run's cells of the same model, else of all its cells), scaled by how this run's wall time has
compared with its cells' own time so far (source builds, collection and idle workers are outside any cell).

At the end, `RunTime` sums up where each worker's time went, from the accounts the workers' clocks wrote
(run/workers.py `Clock`), for the run's end line and the end-of-run table.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from .isolation import scenario_id_from_nodeid
from .workers import TIME_DIR, peak_rss_mb, process_started


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


# The parts of a worker's wall time, in the order the table lists them.
PARTS = ("cells_s", "source_builds_s", "collection_s", "restarts_s", "memory_waits_s", "idle_s", "other_s")


def worker_time(account: dict[str, Any], died_at: float | None = None) -> dict[str, Any]:
    """One worker's wall time split into `PARTS`. Startup and collection count as collection, or as restarts for
    a worker that replaced a crashed one; a crashed worker's last, unfinished cell counts as restarts too."""
    started = account["started"]
    end = account.get("finished") or died_at or account.get("last") or started
    wall = max(0.0, end - started)
    startup = max(0.0, (account.get("collected") or end) - started)
    crashed = not account.get("finished")
    lost = max(0.0, end - account["in_cell_since"]) if crashed and account.get("in_cell_since") else 0.0
    parts = {
        "cells_s": account.get("cells_s", 0.0), "source_builds_s": account.get("source_builds_s", 0.0),
        "collection_s": 0.0 if account.get("replacement") else startup,
        "restarts_s": (startup if account.get("replacement") else 0.0) + lost,
        "memory_waits_s": account.get("memory_waits_s", 0.0), "idle_s": account.get("idle_s", 0.0),
    }
    parts["other_s"] = max(0.0, wall - sum(parts.values()))
    figures: dict[str, Any] = {k: round(v, 2) for k, v in parts.items()}
    figures.update(wall_s=round(wall, 2), cells=account.get("cells", 0), peak_rss_mb=account.get("peak_rss_mb"),
                   in_cells_share=round((parts["cells_s"] + parts["source_builds_s"]) / wall, 3) if wall else None,
                   crashed=crashed, replacement=bool(account.get("replacement")))
    return figures


class RunTime:
    """On the controller (or the one process of a run without xdist): hears which workers died, and at the end
    reads every worker's account from `<run side folder>/time/`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / TIME_DIR
        self.started = process_started()
        self.died: dict[str, float] = {}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        if error is not None:
            self.died[getattr(getattr(node, "gateway", None), "id", "?")] = time.time()

    def figures(self) -> dict[str, Any]:
        """The run's time: wall, the workers' parts summed, the share of worker time inside cells or source
        builds, and the same per worker (with its peak RSS)."""
        per_worker: dict[str, Any] = {}
        for file in sorted(self.folder.glob("*.json")):
            try:
                account = json.loads(file.read_text())
            except (OSError, ValueError):
                continue
            per_worker[file.stem] = worker_time(account, self.died.get(file.stem))
        totals = {part: round(sum(w[part] for w in per_worker.values()), 2) for part in PARTS}
        workers_wall = sum(w["wall_s"] for w in per_worker.values())
        inside = totals["cells_s"] + totals["source_builds_s"]
        return {"wall_s": round(time.time() - self.started, 2), **totals, "workers_wall_s": round(workers_wall, 2),
                "in_cells_share": round(inside / workers_wall, 3) if workers_wall else None,
                "controller_peak_rss_mb": peak_rss_mb(), "per_worker": per_worker}
