"""Whole-tier timings for the bench: a tier is run exactly as a user runs it (pytest, two xdist workers),
timed from the outside, and summarised from the report it writes.

The structural tier (whole registry, meta device) is quick enough to time on every bench run. The full
numeric tier takes on the order of an hour, so it runs only when asked (`--full`); otherwise the bench
repeats the last measured figures, dated, from its JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core import result as results

REPO = Path(__file__).resolve().parents[2]
STRUCTURAL_GOAL_S = 180.0
# The numeric full tier's default parameter budget: models above it are listed as skipped.
FULL_MAX_PARAMS = "10M"


def run_tier(args: list[str], report_dir: Path, workers: int = 2) -> dict[str, Any]:
    """Run `pytest compat_tests <args>` with `workers` xdist workers; wall time and the report's tallies."""
    report_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", str(REPO / "compat_tests"), "-q", "-n", str(workers),
               "--report-dir", str(report_dir), "--progress-every", "120", "-p", "no:cacheprovider", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"  $ {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    figures = summarise(report_dir / "compat-report.jsonl")
    figures.update(command=" ".join(["pytest", *command[3:]]), wall_s=round(wall, 1), exit_code=done.returncode,
                   measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if done.returncode not in (0, 1):  # 1 is "some cells failed": data; anything else is the run itself
        figures["output_tail"] = (done.stdout + done.stderr)[-2000:]
    return figures


def summarise(report: Path) -> dict[str, Any]:
    """Cells by status, models run, and what the parameter budget left out (from the report's skip records)."""
    records = list(results.read(report))
    statuses = Counter(r.status for r in records)
    budget = sorted(r.model for r in records if "--max-params" in r.message)
    meta_limited = sum(1 for r in records if "not checkable on the meta device" in r.message)
    return {
        "cells": len(records),
        "models": len({r.model for r in records} - set(budget)),
        "statuses": dict(sorted(statuses.items())),
        "skipped_by_param_budget": len(budget),
        "skipped_by_param_budget_models": budget,
        "not_checkable_on_meta": meta_limited,
        "cell_seconds": round(sum(r.duration_s for r in records), 1),
    }


def structural(report_dir: Path) -> dict[str, Any]:
    figures = run_tier(["--tier", "structural"], report_dir)
    figures["goal_s"] = STRUCTURAL_GOAL_S
    return figures


def full(report_dir: Path, max_params: str = FULL_MAX_PARAMS) -> dict[str, Any]:
    figures = run_tier(["--tier", "full", "--max-params", max_params], report_dir)
    figures["max_params"] = max_params
    return figures


def previous(output: Path, key: str) -> dict[str, Any] | None:
    """The figures an earlier bench run wrote under `key`, if any."""
    try:
        return json.loads(output.read_text()).get(key)
    except (OSError, ValueError):
        return None
