"""Whole-tier timings for the bench: a tier is run exactly as a user runs it (pytest, two xdist workers),
timed from the outside, and summarised from the report it writes.

The structural tier (whole registry, meta device) is quick enough to time on every bench run. The full
numeric tier takes on the order of an hour, so it runs only when asked (`--full`); otherwise the bench
repeats the last measured figures, dated, from its JSON file.

A named sample (`--sample timm44`) is timed side by side with timm's own forward test over the same models, both
under two xdist workers, so the matrix's cost reads as a multiple of what timm's CI already pays.
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
# The whole registry's files from every older release, on two workers (#16).
CROSS_VERSION_GOAL_S = 600.0
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


def cross_version(report_dir: Path) -> dict[str, Any]:
    """The cross-version tier, with its cell seconds split by what the older release wrote: the pickles' meta
    forwards and the hub folders' builds cost differently, and the split says which to work on."""
    figures = run_tier(["--tier", "cross-version"], report_dir)
    figures["goal_s"] = CROSS_VERSION_GOAL_S
    figures["by_kind"] = by_kind(report_dir / "compat-report.jsonl")
    return figures


def by_kind(report: Path) -> dict[str, dict[str, float]]:
    """Cells and cell seconds of a cross-version run per kind of file, as the report's matrix reads each record."""
    from ..report.cross_version import origin

    split: dict[str, dict[str, float]] = {}
    for record in results.read(report):
        entry = split.setdefault(origin(record)[0], {"cells": 0, "cell_s": 0.0})
        entry["cells"] += 1
        entry["cell_s"] += record.duration_s
    return {kind: {**entry, "cell_s": round(entry["cell_s"], 1)} for kind, entry in split.items()}


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


# timm's `tests/test_models.py::test_model_forward`, reimplemented from the file in the timm 1.0.31 sdist on PyPI
# (`pip download timm==1.0.31 --no-binary :all:`): the model built with pretrained=False in eval mode; the input
# size from its default cfg, capped at 384 (the fixed size kept, `min_input_size` taken over a capped one);
# skipped when that is still over 384; one forward of a batch of one random image, outside no_grad as timm runs
# it; the output's batch dimension and no NaN; then, where the model supports it, grad checkpointing switched on
# and a second forward that must match the first (rtol 1e-4, atol 1e-5). timm gives it 120 s per model. Threads
# per worker are set as the matrix sets them, so the two runs compare like for like.
FORWARD_SOURCE = "tests/test_models.py::test_model_forward of the timm 1.0.31 sdist on PyPI"
FORWARD_TEST = '''"""The bench's stand-in for timm's test_model_forward (see compat_tests/tools/bench_tiers.py)."""
import os

import pytest
import timm
import torch

LIMIT = 384


def forward_input_size(model):
    cfg = model.default_cfg
    size = tuple(cfg["input_size"])
    if cfg.get("fixed_input_size") or max(size) <= LIMIT:
        return size
    return tuple(cfg["min_input_size"]) if cfg.get("min_input_size") else tuple(min(s, LIMIT) for s in size)


@pytest.fixture(scope="session", autouse=True)
def threads():
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model_name", os.environ["TIMM_COMPAT_BENCH_MODELS"].split(","))
def test_model_forward(model_name):
    model = timm.create_model(model_name, pretrained=False).eval()
    size = forward_input_size(model)
    if max(size) > LIMIT:
        pytest.skip("fixed input size over the limit")
    image = torch.randn((1, *size))
    first = model(image)
    assert first.shape[0] == 1
    assert not torch.isnan(first).any(), "NaN in the output"
    try:
        model.set_grad_checkpointing()
    except Exception:
        return  # not supported by this architecture
    again = model(image)
    assert torch.allclose(first, again, rtol=1e-4, atol=1e-5), "grad checkpointing changed the output"
'''


def run_forward_test(models: list[str], folder: Path, workers: int = 2) -> dict[str, Any]:
    """timm's forward test over `models` with `workers` xdist workers, in a folder of its own outside the
    repository (so neither the matrix's plugin nor its pytest settings apply); wall time and outcomes."""
    folder = folder.resolve()  # pytest runs inside it
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_timm_forward.py").write_text(FORWARD_TEST)
    (folder / "pytest.ini").write_text("[pytest]\n")  # stops pytest from finding the repository's settings
    junit = folder / "junit.xml"
    command = [sys.executable, "-m", "pytest", str(folder / "test_timm_forward.py"), "-c", str(folder / "pytest.ini"),
               "-q", "-n", str(workers), "-p", "no:cacheprovider", f"--junitxml={junit}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIMM_COMPAT_BENCH_MODELS": ",".join(models)}
    print(f"  $ TIMM_COMPAT_BENCH_MODELS=<{len(models)} models> {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    figures: dict[str, Any] = {"wall_s": round(wall, 1), "exit_code": done.returncode, "source": FORWARD_SOURCE,
                               "outcomes": _junit_outcomes(junit)}
    if done.returncode not in (0, 1):
        figures["output_tail"] = (done.stdout + done.stderr)[-2000:]
    return figures


def _junit_outcomes(junit: Path) -> dict[str, Any]:
    """passed/failed/skipped counts, and the failures by model, from pytest's JUnit XML."""
    import xml.etree.ElementTree as ElementTree

    try:
        cases = ElementTree.parse(junit).getroot().iter("testcase")
    except (OSError, ElementTree.ParseError):
        return {}
    counts: Counter[str] = Counter()
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    skipped: list[str] = []
    for case in cases:
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        kind = "skipped" if case.find("skipped") is not None else "failed" if bad is not None else "passed"
        counts[kind] += 1
        name = (case.get("name") or "").partition("[")[2].rstrip("]")
        seconds[name] = round(seconds.get(name, 0.0) + float(case.get("time") or 0), 2)
        if kind == "skipped":
            skipped.append(name)
        if bad is not None:
            failures[name] = (bad.get("message") or "").splitlines()[0][:200] if bad.get("message") else "failed"
    return {**dict(sorted(counts.items())), "failures": failures, "seconds": seconds, "skipped_models": skipped}


def by_model(report: Path, forward: dict[str, Any], top: int = 5) -> dict[str, Any]:
    """Where the ratio comes from: the models taking the most cell seconds (their source builds included) beside the
    forward test's seconds for them (its one build included), and the models the forward test skipped."""
    spent = results.seconds_by_model(report)
    skipped = {m: round(spent.get(m, 0.0), 1) for m in forward.get("skipped_models") or []}
    seconds = {m: t for m, t in (forward.get("seconds") or {}).items() if m not in skipped}
    largest = [{"model": m, "matrix_cell_s": round(spent[m], 1), "forward_s": seconds.get(m)}
               for m in sorted(spent, key=lambda m: -spent[m])[:top]]
    return {"largest": largest, "forward_skipped": skipped}


def run_time(report: Path) -> dict[str, Any]:
    """The `time` of a finished run's end line (where its workers' time went); {} when it has none."""
    try:
        lines = report.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if results.run_kind(data) == results.RUN_END:
            return dict(data[results.RUN_END].get("time") or {})
    return {}


def memory_skips(report: Path) -> dict[str, str]:
    """Cells the memory check skipped, with their reasons."""
    return {r.id: r.message for r in results.read(report) if r.status == "skipped"
            and r.message.startswith("skipped: needs ~")}


def previous_all(output: Path) -> dict[str, Any]:
    """Everything an earlier bench run wrote, so a sample's figures are added beside the others'."""
    try:
        data = json.loads(output.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
