"""#15: a cell whose model cannot fit in the memory available is skipped with the figures before its model is
built; a model's files go to RAM only when small beside the memory free; cells too big to share the machine
pass a gate one at a time."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from compat_tests.core import result as results
from compat_tests.core.scenario import Scenario
from compat_tests.run import runner, workdirs
from compat_tests.run.memory import COPIES, Admission, MemoryBudgetError, need, parse_size
from compat_tests.run.selection import fp32_bytes_meta
from compat_tests.source.models import SourceCache, build_source

from .test_matrix_run import run_matrix

REPO = Path(__file__).resolve().parent.parent


def built(log: Path) -> list[str]:
    """The models a run built for real (tests/faults_plugin.py's build log)."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def matrix(tmp_path: Path, *args: str, fault: str = "") -> tuple[subprocess.CompletedProcess, list[dict], list[str]]:
    log = tmp_path / "builds.log"
    os.environ["TIMM_COMPAT_BUILD_LOG"], os.environ["TIMM_COMPAT_FAULT"] = str(log), fault
    try:
        proc, records = run_matrix(tmp_path, "-p", "tests.faults_plugin", "--known-failures", "", *args)
    finally:
        del os.environ["TIMM_COMPAT_BUILD_LOG"], os.environ["TIMM_COMPAT_FAULT"]
    return proc, records, built(log)


def test_sizes_parse_and_a_bad_one_says_what_to_type():
    assert parse_size("8G") == 8 * 2**30 and parse_size("512M") == 512 * 2**20
    assert parse_size("1.5GB") == int(1.5 * 2**30) and parse_size("2GiB") == 2 * 2**30 and parse_size("1000") == 1000
    for bad in ("3X", "", "0", "-1G", "G"):
        with pytest.raises(MemoryBudgetError, match="--memory-budget expects a size like 8G"):
            parse_size(bad)


def test_a_cell_needs_its_paths_copies_and_its_files_when_they_are_in_ram():
    huge, tiny = 10**12, 10**3  # never in RAM / always in RAM (where there is a RAM folder)
    assert need("state_dict", huge).copies == 3 and need("state_dict", huge).files_in_ram == 0
    assert need("create_model", huge).copies == 2 and need("hf_to_timm", huge).copies == 4
    assert need("state_dict", huge).total == 3 * huge + huge // 4  # the headroom: a quarter of one copy
    if workdirs.RAM_DIR:
        assert need("state_dict", tiny).files_in_ram == 1 and need("hf_to_timm", tiny).files_in_ram == 2
        assert need("create_model", tiny).files_in_ram == 0  # it writes nothing
    reason = need("state_dict", huge).refusal(20 * 10**9)
    assert reason == "skipped: needs ~3250.0 GB (3 copies of 1000.0 GB fp32, +250.0 GB headroom), 20.0 GB available"
    assert set(COPIES) >= {"create_model", "state_dict", "safetensors", "pickle", "timm_hub", "hf_auto",
                           "hf_to_timm", "hf_custom"}


def test_the_share_of_free_memory_decides_ram_or_disk():
    if workdirs.RAM_DIR is None:
        pytest.skip("this machine has no writable /dev/shm")
    share = int(workdirs.RAM_SHARE * 16 * 10**9)
    assert workdirs.in_ram(share, 16 * 10**9) and not workdirs.in_ram(share + 1, 16 * 10**9)
    assert workdirs.in_ram(None) and workdirs.in_ram(0), "structural cells (no size, no values) stay in RAM"
    with workdirs.workdir(10**15) as big, workdirs.workdir(10**3) as small:
        assert Path(big).parent == Path(tempfile.gettempdir()) and Path(small).parent == Path(workdirs.RAM_DIR)
        assert Path(big).name.startswith(f"{workdirs.PREFIX}{os.getpid()}-"), "the leak sweep finds it by name"


def test_a_cell_writes_its_files_where_its_model_size_says(monkeypatch):
    """The runner passes the built source's size to the cell's folder; with a share that sends everything to disk,
    the real cell writes there and still passes."""
    chosen = []
    real = workdirs.workdir

    def folder(model_bytes=None):
        made = real(model_bytes)
        chosen.append((model_bytes, Path(made.name).parent))
        return made

    monkeypatch.setattr(runner, "workdir", folder)
    monkeypatch.setattr(workdirs, "RAM_SHARE", 0.0)
    cache = SourceCache()
    result = runner.run_scenario(Scenario("test_vit2", "safetensors"), cache)
    assert result.status == "passed", result.message
    source = cache.get("test_vit2", {})
    assert chosen == [(source.fp32_bytes, Path(tempfile.gettempdir()))]


def test_the_size_counted_on_meta_is_the_built_models():
    assert fp32_bytes_meta("resnet18") == build_source("resnet18").fp32_bytes == 11_689_512 * 4 + 9_600 * 4 + 20 * 8
    assert fp32_bytes_meta("no_such_model") is None


def test_a_model_over_the_memory_budget_is_skipped_with_the_figures_before_it_is_built(tmp_path):
    """resnet18's state_dict cell needs 3 copies of 47 MB (plus its file where that is in RAM) and 268 MB of
    headroom: more than 300 MiB. test_vit2's fits. The build log shows resnet18 never built."""
    proc, records, builds = matrix(tmp_path, "--models", "resnet18,test_vit2", "--paths", "state_dict",
                                   "--memory-budget", "300M")
    by_id = {r["id"]: r for r in records}
    skipped = by_id["resnet18-state_dict-base"]
    assert skipped["status"] == "skipped", proc.stdout[-3000:]
    assert re.fullmatch(r"skipped: needs ~\d+ MB \([34] copies of 47 MB fp32(, 1 of them its file in RAM)?, "
                        r"\+268 MB headroom\), 315 MB available \(capped by --memory-budget\)", skipped["message"])
    assert by_id["test_vit2-state_dict-base"]["status"] == "passed"
    assert "resnet18" not in builds and "test_vit2" in builds
    assert proc.returncode == 0
    # The run's end line says where its time went, for the one process that ran the cells.
    end = [json.loads(line) for line in (tmp_path / results.REPORT_NAME).read_text().splitlines()][-1]
    account = end["run_end"]["time"]["per_worker"]["main"]
    assert account["cells"] == 2 and account["wall_s"] >= account["cells_s"] + account["source_builds_s"]
    assert "time: wall" in proc.stdout and "inside cells or source builds (goal >= 90%)" in proc.stdout
    assert "skipped for memory: 1 cells of resnet18, e.g. resnet18-state_dict-base: skipped: needs ~" in proc.stdout


def test_a_model_too_big_for_this_machine_is_skipped_without_a_budget(tmp_path):
    """The largest model of the timm44 sample on its most demanding path (4 copies of 7.4 GB): skipped on any
    machine with less than ~31 GB free, from its size counted on meta."""
    model = "vit_gigantic_patch14_clip_378"
    if need("hf_to_timm", fp32_bytes_meta(model)).total <= workdirs.available_bytes():
        pytest.skip("this machine has the memory to run it")
    proc, records, builds = matrix(tmp_path, "--models", model, "--paths", "hf_to_timm")
    (record,) = records
    assert record["status"] == "skipped" and record["message"].startswith("skipped: needs ~"), proc.stdout[-3000:]
    assert "(4 copies of 7.4 GB fp32" in record["message"] and builds == []


def test_a_bad_memory_budget_is_refused_in_one_line(tmp_path):
    proc, _ = run_matrix(tmp_path, "--models", "test_vit2", "--memory-budget", "lots")
    assert proc.returncode == 4
    assert "--memory-budget expects a size like 8G, 512M or 1.5GB, not 'lots'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


WAITER = """
import sys
from pathlib import Path
from compat_tests.run.memory import Admission
admission, out = Admission(Path(sys.argv[1]), workers=2, budget=int(sys.argv[2])), Path(sys.argv[3])
with admission.cell("create_model", 300 * 10**6, held=lambda: 0, release=lambda: None) as refusal:
    out.write_text(f"entered, refusal {refusal}")
"""


def test_workers_wait_for_each_others_cells_and_skip_only_what_cannot_fit(tmp_path):
    """Two real processes sharing one run's ledger under a 1.5 GiB budget: a create_model cell of a 300 MB model
    needs 2 copies and 268 MB headroom (0.87 GB), so a second one must wait until the first leaves, then runs;
    a cell that could not fit even alone is skipped at once."""
    side, out, budget = tmp_path / "side", tmp_path / "entered", 3 * 2**29
    first = Admission(side, workers=2, budget=budget)
    with first.cell("create_model", 300 * 10**6, held=lambda: 0, release=lambda: None) as refusal:
        assert refusal is None
        other = subprocess.Popen([sys.executable, "-c", WAITER, str(side), str(budget), str(out)], cwd=REPO)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and other.poll() is None and \
                "waiting" not in (side / "memory.json").read_text():
            time.sleep(0.1)
        time.sleep(1)  # two of its polls: it must still be waiting
        assert not out.exists() and other.poll() is None, "the second cell must wait for the first"
    assert other.wait(timeout=120) == 0
    assert out.read_text() == "entered, refusal None"
    with first.cell("state_dict", 2 * 10**9, held=lambda: 0, release=lambda: None) as too_big:
        assert too_big.startswith("skipped: needs ~6.5 GB (3 copies of 2.0 GB fp32")
        assert too_big.endswith("1.6 GB available (capped by --memory-budget)")


DIES_INSIDE = """
import os, signal, sys
from pathlib import Path
from compat_tests.run.memory import Admission
admission = Admission(Path(sys.argv[1]), workers=2, budget=int(sys.argv[2]))
with admission.cell("create_model", 300 * 10**6, held=lambda: 0, release=lambda: None):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_killed_inside_a_cell_leaves_no_claim_on_memory(tmp_path):
    """Its ledger entry still says `running`, and until its controller reaps it the process is a zombie: neither
    keeps the next cell waiting."""
    side, budget = tmp_path / "side", 3 * 2**29
    dead = subprocess.Popen([sys.executable, "-c", DIES_INSIDE, str(side), str(budget)], cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (side / "memory.json").exists():
        time.sleep(0.1)
    while time.monotonic() < deadline and Path(f"/proc/{dead.pid}/statm").read_text().split()[1] != "0":
        time.sleep(0.1)  # dead, not yet reaped: a zombie
    assert '"running"' in (side / "memory.json").read_text()
    admission = Admission(side, workers=2, budget=budget)
    with admission.cell("create_model", 300 * 10**6, held=lambda: 0, release=lambda: None) as refusal:
        assert refusal is None and admission.waited_s < Admission.POLL_S
    assert dead.wait(timeout=60) == -9
