"""The matrix as a maintainer runs it: pytest on compat_tests, in a subprocess, on tiny real models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat_tests.core import result as results

REPO = Path(__file__).resolve().parent.parent


def recorded(report_dir: Path) -> list[dict]:
    """The cell records of the last run in `report_dir`: its published report, or the run's own file when it
    never finished (a usage error stops a run before it ends)."""
    published = report_dir / results.REPORT_NAME
    files = [published] if published.exists() else results.run_files(report_dir)[-1:]
    return [json.loads(r.to_json()) for f in files for r in results.read(f)]


def run_matrix(tmp_path, *args, timeout: float = 600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "compat_tests"), "--report-dir", str(tmp_path), "-q",
           "-p", "no:cacheprovider", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, recorded(tmp_path)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    return run_matrix(tmp, "--models", "test_vit2,test_byobnet,no_such_modle", "--paths",
                      "create_model,state_dict,safetensors,pickle", "-n", "2")


def test_every_cell_writes_one_record_with_required_fields(small_run):
    proc, records = small_run
    ids = sorted(r["id"] for r in records)
    expected = sorted(f"{m}-{p}-base" for m in ("test_vit2", "test_byobnet")
                      for p in ("create_model", "state_dict", "safetensors", "pickle"))
    assert ids == sorted(expected + ["no_such_modle-create_model-base"]), proc.stdout[-3000:]
    assert len({r["run_id"] for r in records}) == 1, "both xdist workers write under the controller's run id"
    for r in records:
        assert {"versions", "duration_s", "signature", "message", "status"} <= set(r)
        assert set(r["versions"]) >= {"python", "torch", "timm", "transformers"}


def test_core_paths_pass_on_tiny_models_and_the_summary_is_printed(small_run):
    proc, records = small_run
    by_id = {r["id"]: r for r in records}
    assert all(by_id[f"test_vit2-{p}-base"]["status"] == "passed" for p in ("state_dict", "safetensors", "pickle"))
    assert "timm-compat summary" in proc.stdout
    assert "passed 8  failed 0  error 1  skipped 0" in proc.stdout


def test_an_unknown_model_is_a_recorded_error_not_a_traceback(small_run):
    proc, records = small_run
    bad = next(r for r in records if r["model"] == "no_such_modle")
    assert bad["status"] == "error" and bad["signature"] == "unknown-model"
    assert "Traceback" not in proc.stdout
    assert proc.returncode == 1
    # A cell that could not run is an error in pytest's own summary line too, as in the suite's table.
    assert "8 passed, 1 error" in proc.stdout.splitlines()[-1], proc.stdout[-500:]


def test_ids_work_with_pytest_k(tmp_path):
    proc, records = run_matrix(tmp_path, "--models", "test_vit2", "--paths", "state_dict,pickle", "-k", "pickle")
    assert [r["id"] for r in records] == ["test_vit2-pickle-base"]
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_a_bad_path_flag_is_a_clear_usage_error_and_recorded(tmp_path):
    proc, records = run_matrix(tmp_path, "--models", "test_vit2", "--paths", "state_dict,telepathy")
    assert proc.returncode == 4
    assert "unknown path(s) telepathy" in proc.stderr and "Traceback" not in proc.stderr
    assert records and records[0]["signature"] == "bad-input"


def test_max_params_skip_is_recorded_with_the_reason(tmp_path):
    proc, records = run_matrix(tmp_path, "--models", "test_vit2,resnet50", "--paths", "state_dict",
                               "--max-params", "1M")
    skipped = {r["model"]: r for r in records if r["status"] == "skipped"}
    assert "resnet50" in skipped and "--max-params 1M" in skipped["resnet50"]["message"]
    assert proc.returncode == 0, proc.stdout[-2000:]
