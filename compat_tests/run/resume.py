"""Resuming a killed run: which cells already have a result, and which run they belong to."""

from __future__ import annotations

from pathlib import Path

from ..core import result as results


def last_run(report: Path) -> tuple[str | None, set[str]]:
    """The latest run id in `report` and the ids of the cells it finished."""
    records = list(results.read(report))
    if not records:
        return None, set()
    run_id = records[-1].run_id
    return run_id, {r.id for r in records if r.run_id == run_id}
