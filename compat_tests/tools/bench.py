"""`timm-compat bench`: how fast and how lean the matrix is, against its goals.

For a fixed sample of the registry it times a bare `create_model` + forward of each model, then every
core path's cell for it, in this one process (one "worker"), and reports scenarios per second, the
per-cell cost relative to the bare build, and peak RSS against 3x the largest model's fp32 size plus
1.5 GB. It then times the structural tier over the whole registry (goal: under 3 minutes) and reports
the cross-version tier's wall time (goal: under 10 minutes, with its cell seconds per kind of old file) and the
full numeric tier's, with what its parameter budget skipped (measured with --cross-version and --full, else
the last measurement, dated). Figures go to stdout and to a JSON file; nothing here asserts a timing.

`--sample timm44` (44 architectures from 0.3M to 1.8B parameters) runs instead, side by side under two xdist
workers, timm's own forward test over the sample and the matrix over its core paths: both wall times and their
ratio against the 2x goal, the share of worker time inside cells, peak RSS per worker, the cells the memory check
skipped and why, and whether the run left files in /dev/shm or the temp dir.
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
# Across families and sizes, 0.3M to 1.8B parameters, including the two that used to kill workers (#15).
TIMM44 = (
    "aimv2_1b_patch14_224", "cait_m36_384", "coatnet_nano_rw_224", "convnext_pico", "crossvit_15_dagger_240",
    "darknet53", "densenet264d", "eca_nfnet_l0", "efficientnet_b0", "efficientnet_lite2", "ese_vovnet57b",
    "fastvit_mci4", "gcresnext50ts", "halonet50ts", "hrnet_w18_small_v2", "legacy_seresnet152", "mambaout_femto",
    "maxvit_xlarge_tf_384", "mobilenetv1_100", "mobilenetv5_300m_enc", "naflexvit_so150m2_patch16_reg1_gap",
    "nfnet_f2", "pvt_v2_b3", "regnety_040_sgn", "repvgg_a1", "resmlp_big_24_224", "resnet50x4_clip_gap",
    "resnetrs200", "resnext101_32x32d", "semnasnet_100", "shvit_s4", "swinv2_base_window12to24_192to384",
    "test_efficientnet_evos", "tf_efficientnet_lite4", "tnt_s_patch16_224", "vit_base_patch16_clip_224",
    "vit_base_patch32_clip_quickgelu_224", "vit_gigantic_patch14_clip_378", "vit_large_patch16_rope_mixed_ape_224",
    "vit_pe_lang_large_patch14_448", "vit_small_patch16_rope_mixed_ape_224", "vit_srelpos_medium_patch16_224",
    "volo_d5_224", "xcit_small_24_p16_224",
)
SAMPLES = {"default": SAMPLE, "timm44": TIMM44}
# Samples timed side by side with timm's forward test rather than cell by cell in one process.
SIDE_BY_SIDE = ("timm44",)
CORE_PATHS = ("create_model", "state_dict", "safetensors", "pickle", "timm_hub", "hf_auto", "hf_to_timm", "hf_custom")
GOALS = {"cell_vs_bare_max": 3.0, "rss_headroom_gb": 1.5, "rss_model_multiple": 3.0,
         "matrix_vs_forward_test_max": 2.0, "in_cells_share_min": 0.9}


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


def leftovers() -> dict[str, list[str]]:
    """timm-compat folders in /dev/shm and the temp dir: `left` by processes that are gone (what a run must never
    leave behind), and `in_use` by live processes (another run's, not this bench's)."""
    import tempfile

    from ..run.workdirs import PREFIX, RAM_DIR, _alive

    found: dict[str, list[str]] = {"left": [], "in_use": []}
    for base in sorted({RAM_DIR or tempfile.gettempdir(), tempfile.gettempdir()}):
        for folder in sorted(Path(base).glob(f"{PREFIX}*")):
            pid = folder.name[len(PREFIX):].split("-", 1)[0]
            found["in_use" if pid.isdigit() and _alive(int(pid)) else "left"].append(str(folder))
    return found


def side_by_side(name: str, models: tuple[str, ...], paths: tuple[str, ...], folder: Path) -> dict:
    """timm's forward test and the matrix over the same models, each under two xdist workers, timed from outside."""
    from . import bench_tiers

    folder = folder.resolve()  # both runs start in folders of their own: a relative --output must not move
    print(f"bench: timm's forward test over the {name} sample ({len(models)} models), two workers", flush=True)
    forward = bench_tiers.run_forward_test(list(models), folder / "forward")
    print(f"bench: the matrix over the {name} sample ({len(paths)} paths), two workers", flush=True)
    matrix = bench_tiers.run_tier(["--models", ",".join(models), "--paths", ",".join(paths)], folder / "matrix")
    report = folder / "matrix" / "compat-report.jsonl"
    matrix.update(time=bench_tiers.run_time(report), memory_skips=bench_tiers.memory_skips(report),
                  by_model=bench_tiers.by_model(report, forward.get("outcomes") or {}))
    ratio = matrix["wall_s"] / forward["wall_s"] if forward["wall_s"] else None
    return {"sample": name, "models": list(models), "paths": list(paths), "forward_test": forward, "matrix": matrix,
            "matrix_vs_forward_test": round(ratio, 2) if ratio else None,
            "matrix_vs_forward_test_goal": GOALS["matrix_vs_forward_test_max"],
            "in_cells_share_goal": GOALS["in_cells_share_min"], "leftovers": leftovers()}


def main(argv: list[str] | None = None) -> int:
    from . import bench_tiers

    parser = argparse.ArgumentParser(prog="timm-compat bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="default", choices=sorted(SAMPLES),
                        help="the models: default (10 small ones, one worker, cell by cell) or timm44 (44 "
                             "architectures, 0.3M to 1.8B parameters, side by side with timm's forward test)")
    parser.add_argument("--models", default=None, help="comma-separated model names instead of the sample's")
    parser.add_argument("--paths", default=",".join(CORE_PATHS), help="comma-separated loading paths")
    parser.add_argument("--output", default="reports/bench.json", help="where the figures are written")
    parser.add_argument("--no-structural", action="store_true",
                        help="do not time the structural tier (its last measurement is shown, dated)")
    parser.add_argument("--full", action="store_true",
                        help=f"also run the full numeric tier (--max-params {bench_tiers.FULL_MAX_PARAMS}); "
                             "about an hour on two cores")
    parser.add_argument("--cross-version", action="store_true",
                        help="also time the cross-version tier (every older release's files, whole registry); "
                             "about 10 minutes on two cores")
    parser.add_argument("--full-max-params", default=bench_tiers.FULL_MAX_PARAMS,
                        help="parameter budget of the --full run")
    args = parser.parse_args(argv)
    import timm

    models = tuple(m for m in args.models.split(",") if m) if args.models else SAMPLES[args.sample]
    unknown = [m for m in models if not timm.is_model(m)]
    if unknown:
        print(f"bench: unknown model(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    paths = tuple(p for p in args.paths.split(",") if p)
    out = Path(args.output)
    reports = out.parent / "bench-runs"
    if args.sample in SIDE_BY_SIDE:
        figures: dict = {args.sample: side_by_side(args.sample, models, paths, reports / args.sample)}
    else:
        print(f"bench: {len(models)} models x {len(paths)} paths, one worker, one thread")
        figures = run(models, paths)
    if not args.no_structural:
        print("bench: the structural tier over the whole registry, two workers", flush=True)
        figures["structural_tier"] = bench_tiers.structural(reports / "structural")
    elif (earlier := bench_tiers.previous(out, "structural_tier")) is not None:
        figures["structural_tier"] = earlier
    if args.cross_version:
        print("bench: the cross-version tier over the whole registry, two workers", flush=True)
        figures["cross_version_tier"] = bench_tiers.cross_version(reports / "cross-version")
    elif (earlier := bench_tiers.previous(out, "cross_version_tier")) is not None:
        figures["cross_version_tier"] = earlier
    if args.full:
        print("bench: the full numeric tier, two workers")
        figures["full_tier"] = bench_tiers.full(reports / "full", args.full_max_params)
    elif (earlier := bench_tiers.previous(out, "full_tier")) is not None:
        figures["full_tier"] = earlier
    for line in render(figures):
        print(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    # One file for every sample: what this run did not measure stays as it was.
    out.write_text(json.dumps({**bench_tiers.previous_all(out), **figures}, indent=2))
    print(f"figures written to {out}")
    return 0


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(figures: dict) -> list[str]:
    """The figures beside their goals, one line each."""
    lines: list[str] = []
    if "scenarios_per_s" in figures:
        lines += [
            f"scenarios/s          {figures['scenarios_per_s']} (numeric sample, one worker)",
            f"per cell vs bare     {figures['per_cell_vs_bare_worst']}x (goal <= {figures['per_cell_vs_bare_goal']}x) "
            f"{_met(figures['per_cell_vs_bare_worst'] <= figures['per_cell_vs_bare_goal'])}",
            f"peak RSS             {figures['peak_rss_mb']} MB (goal <= {figures['peak_rss_goal_mb']} MB) "
            f"{_met(figures['peak_rss_mb'] <= figures['peak_rss_goal_mb'])}",
        ]
    for name in SIDE_BY_SIDE:
        if name in figures:
            lines += render_side_by_side(figures[name])
    if st := figures.get("structural_tier"):
        lines.append(f"structural tier      {st['wall_s']:.0f} s for {st['models']} models, {st['cells']} cells "
                     f"{st['statuses']} (goal < {st['goal_s']:.0f} s) {_met(st['wall_s'] < st['goal_s'])}"
                     + (f" (measured {st['measured_at']})" if st.get("measured_at") else ""))
    else:
        lines.append("structural tier      not measured yet: run without --no-structural")
    if cv := figures.get("cross_version_tier"):
        kinds = ", ".join(f"{kind} {v['cells']:,} cells {v['cell_s']:,.0f} s"
                          for kind, v in cv.get("by_kind", {}).items())
        lines.append(f"cross-version tier   {cv['wall_s']:.0f} s for {cv['models']} models, {cv['cells']} cells "
                     f"{cv['statuses']} (goal < {cv['goal_s']:.0f} s) {_met(cv['wall_s'] < cv['goal_s'])} "
                     f"(measured {cv['measured_at']}; exit {cv['exit_code']})")
        lines.append(f"  by kind            {kinds}")
    else:
        lines.append("cross-version tier   not measured yet: run with --cross-version (about 10 minutes)")
    if full := figures.get("full_tier"):
        lines.append(f"full numeric tier    {full['wall_s'] / 60:.1f} min for {full['models']} models, {full['cells']} "
                     f"cells {full['statuses']}; --max-params {full['max_params']} skipped "
                     f"{full['skipped_by_param_budget']} models (measured {full['measured_at']}; "
                     f"exit {full['exit_code']})")
    else:
        lines.append("full numeric tier    not measured yet: run with --full (about an hour)")
    return lines


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int)) or "no outcomes read"


def render_side_by_side(f: dict) -> list[str]:
    """A sample timed beside timm's forward test: both walls, their ratio, where the workers' time went, memory."""
    forward, matrix, spent = f["forward_test"], f["matrix"], f["matrix"].get("time") or {}
    workers = {w: v for w, v in (spent.get("per_worker") or {}).items() if v.get("cells")}
    shares = [v["in_cells_share"] for v in workers.values() if v.get("in_cells_share") is not None]
    goal, ratio = f["in_cells_share_goal"], f["matrix_vs_forward_test"]
    lines = [
        f"{f['sample']} sample         {len(f['models'])} architectures x {len(f['paths'])} paths, two xdist workers "
        "each, threads per worker as the matrix sets them",
        f"  timm forward test  {forward['wall_s']:.0f} s ({_counts(forward.get('outcomes', {}))}; exit "
        f"{forward['exit_code']}), reimplemented from {forward['source']}",
        f"  matrix             {matrix['wall_s']:.0f} s ({matrix['cells']} cells: {_counts(matrix['statuses'])}; exit "
        f"{matrix['exit_code']}): {matrix['command']}",
        f"  matrix / forward   {ratio}x (goal <= {f['matrix_vs_forward_test_goal']:g}x) "
        f"{_met(ratio is not None and ratio <= f['matrix_vs_forward_test_goal'])}",
    ]
    if workers:
        each = ", ".join(f"{w} {100 * v['in_cells_share']:.0f}%" for w, v in sorted(workers.items())
                         if v.get("in_cells_share") is not None)
        lines.append(f"  inside cells       {100 * (spent.get('in_cells_share') or 0):.0f}% of worker time in cells or "
                     f"source builds; each worker: {each} (goal >= {100 * goal:.0f}% each) "
                     f"{_met(bool(shares) and min(shares) >= goal)}")
        lines.append("  rest of it         " + ", ".join(
            f"{label} {spent.get(key, 0):.0f} s" for key, label in (
                ("collection_s", "startup and collection"), ("restarts_s", "crashed workers and restarts"),
                ("memory_waits_s", "waiting for memory"), ("idle_s", "idle"), ("other_s", "other")))
            + f" (of {spent.get('workers_wall_s', 0):.0f} s of worker time; run wall {spent.get('wall_s', 0):.0f} s)")
        lines.append("  peak RSS           " + ", ".join(
            f"{w} {v.get('peak_rss_mb') or 0:,.0f} MB" for w, v in sorted((spent.get("per_worker") or {}).items())))
    else:
        lines.append("  inside cells       the run wrote no time account (it did not finish)")
    models = matrix.get("by_model") or {}
    if models.get("largest"):
        label = "  largest models     cell seconds (source builds included) against the forward test's: "
        lines.append(label + ", ".join(
            f"{m['model']} {m['matrix_cell_s']:.0f} s / "
            + (f"{m['forward_s']:.0f} s" if m.get("forward_s") is not None
               else "skipped" if m["model"] in (models.get("forward_skipped") or {}) else "-")
            for m in models["largest"]))
    for model, cell_s in sorted((models.get("forward_skipped") or {}).items()):
        lines.append(f"  forward test skipped {model}, which the matrix ran: {cell_s:.0f} cell seconds")
    skips = matrix.get("memory_skips") or {}
    lines.append(f"  skipped for memory {len(skips)} cells" + (":" if skips else ""))
    lines += [f"    {cell}: {why}" for cell, why in sorted(skips.items())]
    for model, why in sorted((forward.get("outcomes") or {}).get("failures", {}).items()):
        lines.append(f"  forward test failed {model}: {why}")
    left, in_use = f["leftovers"]["left"], f["leftovers"]["in_use"]
    lines.append("  temp files         " + ("/dev/shm and the temp dir are clean of timm-compat files" if not left
                                          else f"LEFT BEHIND: {', '.join(left)}")
                 + (f" ({len(in_use)} in use by other live processes)" if in_use else ""))
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
