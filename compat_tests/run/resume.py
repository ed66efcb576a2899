"""Resuming a killed run: which run was last, and which of its cells already have a result."""

from __future__ import annotations

from pathlib import Path

from ..core import result as results


def last_run(report_dir: Path) -> tuple[str | None, set[str]]:
    """The latest run kept in `report_dir` and the ids of the cells it finished."""
    files = results.run_files(report_dir)
    if not files:
        return None, set()
    run_id = files[-1].stem
    return run_id, {r.id for r in results.read(files[-1], run_id)}
