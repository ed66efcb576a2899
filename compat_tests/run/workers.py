"""xdist workers: each learns the controller's run id (so all their records belong to one run), gets its
share of the machine's cores and a garbage collector tuned to the run (`tune_collector`), and keeps an account
of where its time goes (`Clock`), which the controller sums up at the end of the run (run/progress.py
`RunTime`)."""

from __future__ import annotations

import gc
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .isolation import scenario_id_from_nodeid


class XdistHooks:
    """Registered on the controller when xdist is active. `run_id` is the controller's, read when a node starts;
    `collected` hears the scenario ids a worker collected (every worker collects the same plan)."""

    def __init__(self, run_id: Callable[[], str], collected: Callable[[list[str]], None]) -> None:
        self.run_id = run_id
        self.collected = collected

    @pytest.hookimpl
    def pytest_configure_node(self, node) -> None:
        node.workerinput["timm_compat_run_id"] = self.run_id()

    @pytest.hookimpl
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        scenario_ids = [scenario_id_from_nodeid(i) for i in ids]
        progress = node.config.pluginmanager.get_plugin("timm-compat-progress")
        if progress is not None:
            progress.planned(scenario_ids)
        self.collected(scenario_ids)


def worker_run_id(config: pytest.Config) -> str | None:
    """The run id the controller handed this worker; None in the controller itself."""
    return config.workerinput.get("timm_compat_run_id") if hasattr(config, "workerinput") else None


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# Allocations between young collections when every cell is on meta (Python's default: 700).
META_RUN_GC_THRESHOLD = 20_000


def tune_collector(all_meta: bool) -> None:
    """Called once collection is done. Collection leaves the run's long-lived objects (items, scenarios, the
    plan: about 700 per cell), and every full collection that a model build's allocations trigger walked them all
    again: a sixth of a structural run's time (312 s against 257 s). Frozen, the collector skips them; what
    collection left as garbage goes first. A run of meta cells only also collects less often: a build allocates
    tens of thousands of objects, and garbage holding meta tensors holds no memory; a numeric run keeps the
    default, since there a cycle can hold gigabytes."""
    gc.collect()
    gc.freeze()
    if all_meta:
        gc.set_threshold(META_RUN_GC_THRESHOLD, *gc.get_threshold()[1:])


def process_started() -> float:
    """When this process started (epoch seconds), so a worker's account includes its imports; now if unknown."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


TIME_DIR = "time"


class Clock:
    """Where one process that runs cells spends its time: startup and collection, each cell's time (the source
    builds and memory-gate waits inside it apart), and the gaps between cells (waiting for work). Written to
    `<run side folder>/time/<worker>.json` when each cell starts (and when one ends with none queued behind it), so
    a worker killed mid-cell still leaves its account, and the cell it died in (`in_cell_since`)."""

    def __init__(self, folder: Path, worker: str, replacement: bool = False) -> None:
        self.file = folder / TIME_DIR / f"{worker}.json"
        self.account: dict[str, Any] = {
            "worker": worker, "pid": os.getpid(), "replacement": replacement, "started": process_started(),
            "collected": None, "finished": None, "cells": 0, "cells_s": 0.0, "source_builds_s": 0.0,
            "memory_waits_s": 0.0, "idle_s": 0.0, "in_cell_since": None, "peak_rss_mb": peak_rss_mb(),
        }
        self._session: Any = None  # the MatrixSession, found on the first cell: its cache times source builds
        self._last_end: float | None = None

    @classmethod
    def for_config(cls, config: pytest.Config, folder: Path) -> Clock | None:
        """The clock of a process that runs cells: an xdist worker, or a run without xdist; None for the xdist
        controller, which runs none."""
        if hasattr(config, "workerinput"):
            worker = config.workerinput.get("workerid", "gw?")
            # xdist numbers replacement workers on from the count it started with.
            index = worker[2:]
            replacement = index.isdigit() and int(index) >= int(config.workerinput.get("workercount", 1))
            return cls(folder, worker, replacement)
        if config.getoption("dist", "no") != "no" and config.getoption("tx", None):
            return None
        return cls(folder, "main")

    def _counters(self) -> tuple[float, float]:
        if self._session is None:
            return 0.0, 0.0
        return self._session.cache.build_s, self._session.memory.waited_s

    def write(self) -> None:
        self.account["last"] = time.time()
        self.account["peak_rss_mb"] = peak_rss_mb()
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.file.with_suffix(".partial")
            partial.write_text(json.dumps(self.account))
            partial.replace(self.file)  # a reader never sees half an account
        except OSError:
            pass  # the account is a report on the run, never a reason to fail it

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.account["collected"] = self._last_end = time.time()
        self.write()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        start = time.time()
        if self._last_end is not None:
            self.account["idle_s"] += start - self._last_end
        builds, waits = self._counters()
        self.account["in_cell_since"] = start
        self.write()
        try:
            return (yield)
        finally:
            end = time.time()
            now_builds, now_waits = self._counters()
            self.account["source_builds_s"] += now_builds - builds
            self.account["memory_waits_s"] += now_waits - waits
            self.account["cells_s"] += (end - start) - (now_builds - builds) - (now_waits - waits)
            self.account["cells"] += 1
            self.account["in_cell_since"] = None
            self._last_end = end
            if nextitem is None:
                # With a next cell queued, its start writes this account a moment later (two writes a cell
                # were 3% of a structural run); a worker that may now wait for work writes it now.
                self.write()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        if self._session is None:
            self._session = getattr(item, "funcargs", {}).get("matrix_session")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # tryfirst: the plugin's own sessionfinish writes the run's end line from these accounts.
        end = time.time()
        if self._last_end is not None:
            self.account["idle_s"] += end - self._last_end
            self._last_end = end
        self.account["finished"] = end
        self.write()
