"""xdist workers: each learns the controller's run id (so all their records belong to one run) and gets its
share of the machine's cores."""

from __future__ import annotations

import os
from collections.abc import Callable

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
