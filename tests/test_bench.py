"""The bench's tier timings: a real (tiny) tier run through the same command the bench uses."""

import json

import pytest

from compat_tests.tools import bench, bench_tiers


def test_a_tier_run_is_timed_and_tallied_with_what_the_budget_skipped(tmp_path):
    figures = bench_tiers.run_tier(
        ["--tier", "full", "--models", "test_vit2,resnet18", "--max-params", "1M", "--paths", "state_dict"],
        tmp_path, workers=1)
    assert figures["exit_code"] == 0, figures.get("output_tail")
    assert figures["skipped_by_param_budget_models"] == ["resnet18"]
    assert figures["models"] == 1 and figures["statuses"]["passed"] == 1
    assert figures["wall_s"] > 0 and "--max-params 1M" in figures["command"]


def test_render_puts_each_figure_beside_its_goal():
    figures = {"scenarios_per_s": 1.0, "per_cell_vs_bare_worst": 4.0, "per_cell_vs_bare_goal": 3.0,
               "peak_rss_mb": 100.0, "peak_rss_goal_mb": 2000.0,
               "structural_tier": {"wall_s": 200.0, "models": 1371, "cells": 8000, "statuses": {"passed": 8000},
                                   "goal_s": 180.0}}
    lines = bench.render(figures)
    assert any("per cell vs bare" in line and "NOT met" in line for line in lines)
    assert any("peak RSS" in line and line.endswith(" met") for line in lines)
    assert any("structural tier" in line and "NOT met" in line for line in lines)
    assert any("full numeric tier" in line and "--full" in line for line in lines)
    assert any("cross-version tier" in line and "--cross-version" in line for line in lines)


def test_the_cross_version_tier_is_split_by_kind_of_old_file(tmp_path):
    """A real (one-model) cross-version run: its figure stands beside the 10-minute goal, with the cell seconds
    of each kind of file an older release wrote."""
    figures = bench_tiers.run_tier(["--tier", "cross-version", "--models", "test_vit"], tmp_path, workers=1)
    assert figures["exit_code"] == 0, figures.get("output_tail")
    figures.update(goal_s=bench_tiers.CROSS_VERSION_GOAL_S, by_kind=bench_tiers.by_kind(
        tmp_path / "compat-report.jsonl"))
    assert {"state_dict", "headless", "pickle"} <= set(figures["by_kind"])
    assert sum(v["cells"] for v in figures["by_kind"].values()) == figures["cells"]
    # The split adds up to the run's cell seconds (rounding once, at the end, not per cell).
    assert abs(sum(v["cell_s"] for v in figures["by_kind"].values()) - figures["cell_seconds"]) < 0.5
    line, kinds = bench.render({"cross_version_tier": figures})[1:3]
    # The verdict follows the figure (a cold cache of older releases' files can take this run past the goal).
    verdict = "met" if figures["wall_s"] < bench_tiers.CROSS_VERSION_GOAL_S else "NOT met"
    assert line.startswith("cross-version tier") and f"(goal < 600 s) {verdict} " in line
    assert "pickle" in kinds and "cells" in kinds


def test_timm_compat_bench_is_the_bench_and_refuses_unknown_models(capsys):
    from compat_tests.tools.cli import main

    assert main(["bench", "--models", "resnet_18", "--no-structural"]) == 2
    assert "unknown model(s) resnet_18" in capsys.readouterr().err


def test_the_timm44_sample_is_the_44_architectures_of_issue_15():
    import timm

    assert len(bench.TIMM44) == len(set(bench.TIMM44)) == 44
    assert all(timm.is_model(m) for m in bench.TIMM44)
    assert {"aimv2_1b_patch14_224", "vit_gigantic_patch14_clip_378"} <= set(bench.TIMM44)


def side_by_side_figures(**changes):
    figures = {
        "sample": "timm44", "models": list(bench.TIMM44), "paths": list(bench.CORE_PATHS),
        "forward_test": {"wall_s": 300.0, "exit_code": 1, "source": bench_tiers.FORWARD_SOURCE,
                         "outcomes": {"failed": 1, "passed": 43,
                                      "failures": {"vit_gigantic_patch14_clip_378": "Timeout"}}},
        "matrix": {"wall_s": 660.0, "exit_code": 1, "cells": 352, "statuses": {"passed": 300, "skipped": 52},
                   "command": "pytest compat_tests ...",
                   "memory_skips": {"vit_gigantic_patch14_clip_378-hf_to_timm-base": "skipped: needs ~31.4 GB (...)"},
                   "by_model": {"largest": [{"model": "vit_gigantic_patch14_clip_378", "matrix_cell_s": 344.7,
                                             "forward_s": 96.6},
                                            {"model": "aimv2_1b_patch14_224", "matrix_cell_s": 289.5,
                                             "forward_s": 54.3},
                                            {"model": "vit_pe_lang_large_patch14_448", "matrix_cell_s": 106.4,
                                             "forward_s": None}],
                                "forward_skipped": {"vit_pe_lang_large_patch14_448": 106.4}},
                   "time": {"wall_s": 650.0, "workers_wall_s": 1280.0, "in_cells_share": 0.93, "cells_s": 1100.0,
                            "source_builds_s": 90.0, "collection_s": 16.0, "restarts_s": 0.0, "memory_waits_s": 60.0,
                            "idle_s": 10.0, "other_s": 4.0,
                            "per_worker": {"gw0": {"cells": 170, "in_cells_share": 0.95, "peak_rss_mb": 5400.0},
                                           "gw1": {"cells": 182, "in_cells_share": 0.88, "peak_rss_mb": 17000.0}}}},
        "matrix_vs_forward_test": 2.2, "matrix_vs_forward_test_goal": 2.0, "in_cells_share_goal": 0.9,
        "leftovers": {"left": [], "in_use": []},
    }
    figures.update(changes)
    return figures


def test_the_side_by_side_figures_are_shown_beside_their_goals():
    lines = bench.render_side_by_side(side_by_side_figures())
    text = "\n".join(lines)
    assert any(line.strip().startswith("matrix / forward   2.2x (goal <= 2x) NOT met") for line in lines), text
    assert "timm 1.0.31 sdist on PyPI" in text and "passed 43" in text
    assert "each worker: gw0 95%, gw1 88% (goal >= 90% each) NOT met" in text
    assert "gw0 5,400 MB, gw1 17,000 MB" in text and "waiting for memory 60 s" in text
    assert "vit_gigantic_patch14_clip_378-hf_to_timm-base: skipped: needs ~31.4 GB" in text
    assert "forward test failed vit_gigantic_patch14_clip_378: Timeout" in text
    assert ("largest models     cell seconds (source builds included) against the forward test's: "
            "vit_gigantic_patch14_clip_378 345 s / 97 s, aimv2_1b_patch14_224 290 s / 54 s, "
            "vit_pe_lang_large_patch14_448 106 s / skipped") in text
    assert "forward test skipped vit_pe_lang_large_patch14_448, which the matrix ran: 106 cell seconds" in text
    assert "/dev/shm and the temp dir are clean of timm-compat files" in text
    left = bench.render_side_by_side(side_by_side_figures(leftovers={"left": ["/dev/shm/timm-compat-1-x"],
                                                                      "in_use": []}))
    assert any("LEFT BEHIND: /dev/shm/timm-compat-1-x" in line for line in left)


@pytest.mark.slow
def test_a_side_by_side_bench_runs_both_and_leaves_no_files(tmp_path, capsys):
    """The timm44 side by side on two tiny models: both runs real, each under two workers."""
    out = tmp_path / "bench.json"
    assert bench.main(["--sample", "timm44", "--models", "test_vit2,test_byobnet", "--paths", "state_dict",
                       "--no-structural", "--output", str(out)]) == 0
    figures = json.loads(out.read_text())["timm44"]
    assert figures["forward_test"]["outcomes"]["passed"] == 2, figures["forward_test"]
    forward_s = figures["forward_test"]["outcomes"]["seconds"]
    assert set(forward_s) == {"test_vit2", "test_byobnet"} and all(t > 0 for t in forward_s.values())
    largest = figures["matrix"]["by_model"]["largest"]
    assert {m["model"] for m in largest} == {"test_vit2", "test_byobnet"}
    assert all(m["matrix_cell_s"] > 0 and m["forward_s"] == forward_s[m["model"]] for m in largest)
    assert figures["matrix"]["statuses"] == {"passed": 2}
    assert set(figures["matrix"]["time"]["per_worker"]) == {"gw0", "gw1"}
    assert figures["leftovers"]["left"] == []
    assert "matrix / forward" in capsys.readouterr().out
