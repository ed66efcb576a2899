"""Runs and reports a maintainer can trust: each run keeps its own file, a cut or killed run is said to be one
(never passed off as clean), an ad-hoc run leaves the real one whole, and the names a live run gave come back
when a real report is re-classified. All on real runs of the real matrix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compat_tests.core import result as results
from compat_tests.report import store
from compat_tests.report.reclassify import reclassify

from .test_cli import cli
from .test_matrix_run import REPO, run_matrix

CELLS = ("--models", "test_vit2,test_byobnet", "--paths", "create_model,state_dict,pickle,foreign")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    proc, records = run_matrix(reports, *CELLS, "-n", "2")
    assert records and proc.returncode == 0, proc.stdout[-3000:]
    return reports


def test_a_run_writes_its_own_file_says_what_it_selected_and_ends(real_run):
    (run_file,) = results.run_files(real_run)
    report = store.read_report(run_file)
    (run,) = report.runs.values()
    assert run.finished and run.selection["paths"] == "create_model,state_dict,pickle,foreign"
    assert set(run.planned or ()) == {r.id for r in report.records} and report.problems() == []
    assert (real_run / results.REPORT_NAME).read_bytes() == run_file.read_bytes()


def test_a_report_cut_in_the_middle_of_a_line_is_flagged_by_diff_and_report(real_run, tmp_path):
    full = real_run / results.REPORT_NAME
    text = full.read_text()
    cut = tmp_path / "half.jsonl"
    cut.write_text(text[: len(text) // 2])  # a nightly killed while writing
    proc = cli("diff", str(full), str(cut))
    assert proc.returncode != 0 and "NOT RUN" in proc.stdout, proc.stdout + proc.stderr
    assert "last line is cut off" in proc.stderr
    kept = {r.id for r in store.read_file(cut)}
    missing = [r.id for r in store.read_file(full) if r.id not in kept]
    assert missing and all(i in proc.stdout for i in missing[:20])
    report = cli("report", str(cut), "--out", str(tmp_path / "out"), "--against", str(full))
    assert report.returncode != 0 and "INCOMPLETE" in report.stderr and "INCOMPLETE" in report.stdout
    # The same report whole: nothing to flag.
    assert cli("diff", str(full), str(full)).returncode == 0


def test_a_report_missing_whole_lines_is_flagged_too(real_run, tmp_path):
    lines = (real_run / results.REPORT_NAME).read_text().splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:-3]))  # the last cells and the end line never written
    proc = cli("diff", str(real_run / results.REPORT_NAME), str(partial))
    assert proc.returncode != 0 and "never finished" in proc.stderr, proc.stdout + proc.stderr


def test_a_different_selection_on_purpose_is_listed_not_flagged(real_run, tmp_path):
    proc, records = run_matrix(tmp_path, "--models", "test_vit2", "--paths", "create_model")
    assert records and proc.returncode == 0
    diff = cli("diff", str(real_run / results.REPORT_NAME), str(tmp_path / results.REPORT_NAME))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "not selected by the new run" in diff.stdout and "NOT RUN" not in diff.stdout


def test_ad_hoc_runs_leave_the_real_one_whole_and_readable(real_run, tmp_path):
    reports = tmp_path / "reports"
    proc, _ = run_matrix(reports, *CELLS)
    (real,) = results.run_files(reports)
    before = real.read_bytes()
    run_matrix(reports, "--models", "nonexistent_model_xyz")  # finishes, with one error cell
    bad, _ = run_matrix(reports, "--paths", "bogus_path")  # refused before collection
    assert bad.returncode == 4
    files = results.run_files(reports)
    assert len(files) == 3 and real.read_bytes() == before
    for f in files:
        assert len({r.run_id for r in results.read(f)}) <= 1, f"{f.name} mixes runs"
    # The refused run displaced nothing: the report is the last run that finished.
    assert [r.model for r in results.read(reports / results.REPORT_NAME)] == ["nonexistent_model_xyz"]
    shown = cli("report", str(real), "--out", str(tmp_path / "out"))
    assert shown.returncode == 0 and (tmp_path / "out" / "report.html").is_file(), shown.stderr
    # The run kept in runs/ with the same selection is what a later report of the real one compares with.
    again, _ = run_matrix(reports, *CELLS)
    latest = cli("report", str(reports), "--out", str(tmp_path / "out2"))
    assert latest.returncode == 0 and "Since the previous run" in latest.stdout, latest.stderr


def test_old_runs_beyond_the_budget_are_deleted(tmp_path):
    for _ in range(3):
        run_matrix(tmp_path, "--models", "test_vit2", "--paths", "create_model", "--keep-runs", "2")
    assert len(results.run_files(tmp_path)) == 2


def test_a_killed_run_is_never_finished_and_does_not_become_the_report(real_run, tmp_path):
    reports = tmp_path / "reports"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "compat_tests"), "-q", "-p", "no:cacheprovider",
           "--report-dir", str(reports), "--models", "test_vit2,test_byobnet,test_resnet,test_convnext",
           "--paths", "state_dict,pickle,safetensors"]
    child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None and not (
            results.run_files(reports) and len(list(results.read(results.run_files(reports)[-1]))) >= 2):
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not (reports / results.REPORT_NAME).exists()
    proc = cli("report", str(reports), "--out", str(tmp_path / "out"))
    assert proc.returncode != 0 and "never finished" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_a_smoke_report_reclassified_gives_every_live_signature_back(tmp_path):
    """The whole smoke tier, as `tox -e compat` runs it: re-deriving each failure's name from its recorded
    evidence (what `--reclassify` does) must give back the name the live run gave."""
    proc, records = run_matrix(tmp_path, "-n", "2", timeout=1800)  # about 3 minutes on an idle 2-core machine
    assert len(records) > 600, proc.stdout[-3000:]
    report = store.read_report(tmp_path / results.REPORT_NAME)
    failing = [r for r in report.records if r.status in ("failed", "xfailed")]
    assert failing and reclassify(report.records) == []
    assert json.loads(json.dumps(report.problems())) == []


def test_the_progress_estimate_follows_what_each_cell_took_last_time():
    """The estimate sums the remaining cells' times in the last complete run, scaled by how this run's wall time
    has compared with those times so far; a cell the last run did not have counts as its model's mean."""
    from types import SimpleNamespace

    from compat_tests.run.progress import Progress

    progress = Progress(SimpleNamespace(), every=1e9, expected={"a-p-base": 10.0, "b-p-base": 1.0, "c-p-base": 100.0})
    progress.planned(["a-p-base", "b-p-base", "c-p-base", "c-q-base"])
    progress.started = 0.0
    for when, seconds in (("setup", 9.0), ("call", 0.5), ("teardown", 0.5)):
        progress.pytest_runtest_logreport(SimpleNamespace(nodeid="t.py::test_scenario[a-p-base]", when=when,
                                                          duration=seconds))
    # 10 expected seconds of cells took 20 s of wall time, so the remaining b (1 s last time), c (100 s) and
    # c-q-base (new: the mean of this run's finished cells, 10 s) take twice their sum.
    assert progress.estimate_s(now=20.0) == pytest.approx(2 * (1 + 100 + 10))
