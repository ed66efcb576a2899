"""`timm-compat bench`: how fast and how lean the matrix is, against its goals.

For a fixed sample of the registry it times a bare `create_model` + forward of each model, then every
core path's cell for it, in this one process (one "worker"), and reports scenarios per second, the
per-cell cost relative to the bare build, and peak RSS against 3x the largest model's fp32 size plus
1.5 GB. It then times the structural tier over the whole registry (goal: under 3 minutes) and reports
the full numeric tier's wall time and what its parameter budget skipped (measured with --full, else the
last measurement, dated). Figures go to stdout and to a JSON file; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# A fixed sample across families and sizes (0.3M to 25M parameters), so runs stay comparable.
SAMPLE = (
    "test_vit2", "test_byobnet", "resnet18", "convnext_atto", "deit_tiny_patch16_224", "efficientnet_b0",
    "mobilenetv3_small_050", "regnety_002", "repvgg_a0", "swin_tiny_patch4_window7_224",
)
CORE_PATHS = ("create_model", "state_dict", "safetensors", "pickle", "timm_hub", "hf_auto", "hf_to_timm", "hf_custom")
GOALS = {"cell_vs_bare_max": 3.0, "rss_headroom_gb": 1.5, "rss_model_multiple": 3.0}


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _bare_seconds(name: str) -> tuple[float, int]:
    """Seconds for create_model + one forward at the matrix's input size, and the model's fp32 bytes."""
    import timm
    import torch

    from ..source.models import BATCH, _input_candidates, make_input

    start = time.perf_counter()
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    size = _input_candidates(model, {})[0]
    with torch.no_grad():
        try:
            model(make_input(size, 0, BATCH))
        except Exception:
            model(make_input(_input_candidates(model, {})[-1], 0, BATCH))
    elapsed = time.perf_counter() - start
    return elapsed, sum(p.numel() for p in model.parameters()) * 4


def run(models: tuple[str, ...], paths: tuple[str, ...]) -> dict:
    import torch

    from ..core.scenario import Scenario
    from ..run.runner import run_scenario
    from ..source.models import SourceCache

    torch.set_num_threads(1)  # what each of the two xdist workers gets on a 2-core machine
    per_model = []
    cells = 0
    wall = time.perf_counter()
    for name in models:
        bare, fp32_bytes = _bare_seconds(name)
        cache = SourceCache()
        start = time.perf_counter()
        statuses = [run_scenario(Scenario(name, p), cache).status for p in paths]
        matrix = time.perf_counter() - start
        cells += len(paths)
        per_model.append({
            "model": name, "bare_create_forward_s": round(bare, 3), "matrix_s": round(matrix, 3),
            "cells": len(paths), "per_cell_vs_bare": round(matrix / len(paths) / bare, 2),
            "fp32_mb": round(fp32_bytes / 2**20, 1), "statuses": statuses,
        })
        print(f"  {name:32s} bare {bare:6.2f}s  matrix {matrix:6.2f}s  per cell {matrix / len(paths) / bare:5.2f}x",
              flush=True)
    wall = time.perf_counter() - wall
    largest = max(m["fp32_mb"] for m in per_model) * 2**20
    rss_goal = GOALS["rss_model_multiple"] * largest + GOALS["rss_headroom_gb"] * 2**30
    worst = max(m["per_cell_vs_bare"] for m in per_model)
    return {
        "models": list(models), "paths": list(paths), "cells": cells, "wall_s": round(wall, 2),
        "scenarios_per_s": round(cells / wall, 3),
        "per_cell_vs_bare_worst": worst,
        "per_cell_vs_bare_goal": GOALS["cell_vs_bare_max"],
        "peak_rss_mb": round(_peak_rss_bytes() / 2**20, 1),
        "peak_rss_goal_mb": round(rss_goal / 2**20, 1),
        "per_model": per_model,
    }


def main(argv: list[str] | None = None) -> int:
    from . import bench_tiers

    parser = argparse.ArgumentParser(prog="timm-compat bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SAMPLE), help="comma-separated model names (default: the sample)")
    parser.add_argument("--paths", default=",".join(CORE_PATHS), help="comma-separated loading paths")
    parser.add_argument("--output", default="reports/bench.json", help="where the figures are written")
    parser.add_argument("--no-structural", action="store_true", help="do not time the structural tier")
    parser.add_argument("--full", action="store_true",
                        help=f"also run the full numeric tier (--max-params {bench_tiers.FULL_MAX_PARAMS}); "
                             "about an hour on two cores")
    parser.add_argument("--full-max-params", default=bench_tiers.FULL_MAX_PARAMS,
                        help="parameter budget of the --full run")
    args = parser.parse_args(argv)
    import timm

    models = tuple(m for m in args.models.split(",") if m)
    unknown = [m for m in models if not timm.is_model(m)]
    if unknown:
        print(f"bench: unknown model(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    out = Path(args.output)
    reports = out.parent / "bench-runs"
    print(f"bench: {len(models)} models x {len(args.paths.split(','))} paths, one worker, one thread")
    figures = run(models, tuple(p for p in args.paths.split(",") if p))
    if not args.no_structural:
        print("bench: the structural tier over the whole registry, two workers")
        figures["structural_tier"] = bench_tiers.structural(reports / "structural")
    if args.full:
        print("bench: the full numeric tier, two workers")
        figures["full_tier"] = bench_tiers.full(reports / "full", args.full_max_params)
    elif (earlier := bench_tiers.previous(out, "full_tier")) is not None:
        figures["full_tier"] = earlier
    for line in render(figures):
        print(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {out}")
    return 0


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(figures: dict) -> list[str]:
    """The figures beside their goals, one line each."""
    lines = [
        f"scenarios/s          {figures['scenarios_per_s']} (numeric sample, one worker)",
        f"per cell vs bare     {figures['per_cell_vs_bare_worst']}x (goal <= {figures['per_cell_vs_bare_goal']}x) "
        f"{_met(figures['per_cell_vs_bare_worst'] <= figures['per_cell_vs_bare_goal'])}",
        f"peak RSS             {figures['peak_rss_mb']} MB (goal <= {figures['peak_rss_goal_mb']} MB) "
        f"{_met(figures['peak_rss_mb'] <= figures['peak_rss_goal_mb'])}",
    ]
    if st := figures.get("structural_tier"):
        lines.append(f"structural tier      {st['wall_s']:.0f} s for {st['models']} models, {st['cells']} cells "
                     f"{st['statuses']} (goal < {st['goal_s']:.0f} s) {_met(st['wall_s'] < st['goal_s'])}")
    if full := figures.get("full_tier"):
        lines.append(f"full numeric tier    {full['wall_s'] / 60:.1f} min for {full['models']} models, {full['cells']} "
                     f"cells {full['statuses']}; --max-params {full['max_params']} skipped "
                     f"{full['skipped_by_param_budget']} models (measured {full['measured_at']}; "
                     f"exit {full['exit_code']})")
    else:
        lines.append("full numeric tier    not measured yet: run with --full (about an hour)")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
