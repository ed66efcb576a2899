"""Progress on long runs: on the controller, every `every` seconds, how many scenarios are done and how many
remain. A pytest plugin object the matrix plugin registers."""

from __future__ import annotations

import time

import pytest


class Progress:
    def __init__(self, config: pytest.Config, every: float) -> None:
        self.config, self.every = config, every
        self.total: int | None = None
        self.done = 0
        self.started = self.last = time.monotonic()

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.total is None and session.items:  # without xdist; with it, the node hook sets the total
            self.total = len(session.items)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        self.done += 1
        now = time.monotonic()
        if not self.total or now - self.last < self.every or self.done >= self.total:
            return
        self.last = now
        remain = self.total - self.done
        eta = (now - self.started) / self.done * remain
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write("\n")  # progress dots/percentages do not end their line
            terminal.write_line(f"timm-compat: {self.done}/{self.total} scenarios done, {remain} remain "
                                f"(~{eta / 60:.1f} min left)")
