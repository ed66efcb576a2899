"""A cell that segfaults or hangs is recorded as that cell's crash/timeout and the run goes on; a run
killed half-way and resumed ends with the same report as an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from compat_tests.run.isolation import scenario_id_from_nodeid

from .test_matrix_run import recorded

REPO = Path(__file__).resolve().parent.parent
CELLS = ["--models", "test_vit2,test_byobnet", "--paths", "state_dict,pickle"]


def matrix(report_dir, *args, fault="", wait=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TIMM_COMPAT_FAULT": fault}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "compat_tests"), "-q", "-p", "no:cacheprovider",
           "-p", "tests.faults_plugin", "--known-failures", "", "--report-dir", str(report_dir), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def records(report_dir):
    return recorded(Path(report_dir))


def outcomes(report_dir):
    return sorted((r["id"], r["status"], r["signature"]) for r in records(report_dir))


def test_scenario_id_from_an_xdist_nodeid():
    nodeid = "compat_tests/test_matrix.py::test_scenario[resnet18-state_dict-base@resnet18]"
    assert scenario_id_from_nodeid(nodeid) == "resnet18-state_dict-base"


def test_a_segfaulting_cell_is_recorded_as_crash_and_the_run_goes_on(tmp_path):
    proc = matrix(tmp_path, *CELLS, "-n", "2", fault="crash:test_byobnet")
    by_id = {r["id"]: r for r in records(tmp_path)}
    for path in ("state_dict", "pickle"):
        assert by_id[f"test_byobnet-{path}-base"]["signature"] == "crash", proc.stdout[-3000:]
        assert by_id[f"test_byobnet-{path}-base"]["status"] == "failed"
        assert by_id[f"test_vit2-{path}-base"]["status"] == "passed"
    assert proc.returncode == 1


def test_a_hanging_cell_is_recorded_as_timeout(tmp_path):
    proc = matrix(tmp_path, "--models", "test_byobnet,test_vit2", "--paths", "state_dict", "--timeout", "5",
                  fault="hang:test_byobnet")
    by_id = {r["id"]: r for r in records(tmp_path)}
    assert by_id["test_byobnet-state_dict-base"]["signature"] == "timeout", proc.stdout[-3000:]
    assert "5s" in by_id["test_byobnet-state_dict-base"]["message"]
    assert by_id["test_vit2-state_dict-base"]["status"] == "passed"


def test_a_killed_run_resumed_ends_with_the_uninterrupted_report(tmp_path):
    cells = ["--models", "test_vit2,test_byobnet,test_resnet,test_convnext", "--paths", "state_dict,pickle,safetensors"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    matrix(whole, *cells)
    child = matrix(killed, *cells, wait=False)
    deadline = time.monotonic() + 300
    while len(records(killed)) < 3 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    partial = len(records(killed))
    assert 3 <= partial < 12, "the run must be killed half-way for this test to mean anything"
    resumed = matrix(killed, *cells, "--resume")
    assert outcomes(killed) == outcomes(whole), resumed.stdout[-3000:]
    assert len({r["run_id"] for r in records(killed)}) == 1, "the resumed half belongs to the same run"
    assert f"{partial} deselected" in resumed.stdout


def orphans() -> list[Path]:
    """Cell folders whose process is gone: RAM or disk that nobody will free."""
    from compat_tests.run.workdirs import PREFIX, RAM_DIR, _alive

    found = [f for base in {RAM_DIR or "/tmp", "/tmp"} for f in Path(base).glob(f"{PREFIX}*")]
    return [f for f in found if f.name[len(PREFIX):].split("-")[0].isdigit()
            and not _alive(int(f.name[len(PREFIX):].split("-")[0]))]


def test_a_worker_killed_mid_cell_leaves_no_files_behind(tmp_path):
    """SIGKILL inside the load, with the cell's checkpoint written to its (RAM-backed) folder: the controller,
    which outlives the worker, removes the folder; a run killed whole is swept by the next run."""
    proc = matrix(tmp_path, "--models", "test_vit2", "--paths", "state_dict", "-n", "2", fault="kill-on-load:")
    (record,) = records(tmp_path)
    assert record["signature"] == "crash", proc.stdout[-3000:]
    assert orphans() == []
    child = matrix(tmp_path / "whole", "--models", "test_vit2", "--paths", "state_dict", fault="kill-on-load:")
    assert child.returncode == -signal.SIGKILL and orphans(), "the run itself was killed mid-cell"
    matrix(tmp_path / "next", "--models", "test_vit2", "--paths", "create_model")
    assert orphans() == []
