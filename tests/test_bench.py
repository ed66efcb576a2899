"""The bench's tier timings: a real (tiny) tier run through the same command the bench uses."""

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


def test_timm_compat_bench_is_the_bench_and_refuses_unknown_models(capsys):
    from compat_tests.tools.cli import main

    assert main(["bench", "--models", "resnet_18", "--no-structural"]) == 2
    assert "unknown model(s) resnet_18" in capsys.readouterr().err
