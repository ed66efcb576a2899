"""`timm-compat` as a person or a CI job runs it: in a subprocess, on report files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat_tests.core.result import Result
from compat_tests.core.versions import installed
from compat_tests.paths.base import LoadingPath
from compat_tests.report import store as report_io
from compat_tests.repro.script import script

from .test_repro import SPEC, drop_one_key_roundtrip, run_script

REPO = Path(__file__).resolve().parent.parent
VERSIONS = {"python": "3.11.7", "torch": "2.14.1", "timm": "1.0.31", "transformers": "5.23.0"}


def cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}  # never write the real CI summary
    env = {**base, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "compat_tests.tools.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def rec(model: str, status: str, signature: str = "", path: str = "hf_auto", run_id: str = "20261124T0Z-b",
        versions: dict | None = None, **kw) -> Result:
    return Result(id=f"{model}-{path}-base", model=model, path=path, override="base", status=status,
                  signature=signature, message=f"detail of {model}", versions=versions or VERSIONS, run_id=run_id, **kw)


@pytest.fixture
def reports(tmp_path):
    old = [rec("a", "passed", run_id="20261101T0Z-a"), rec("b", "failed", "kwarg-conflict", run_id="20261101T0Z-a")]
    new = [rec("a", "failed", "kwarg-conflict"), rec("b", "passed"),
           rec("c", "failed", "output-mismatch", evidence={"output": {"ok": False, "max_error": float("nan"),
                                                                     "shape": [2], "expected_shape": [2],
                                                                     "tolerance": 1e-5}})]
    (tmp_path / "run").mkdir()
    report_io.write(tmp_path / "run" / "compat-report.jsonl", new)
    report_io.write(tmp_path / "run" / "compat-report.prev.jsonl", old)
    return tmp_path


def test_report_writes_markdown_html_and_the_step_summary(reports):
    step = reports / "step.md"
    proc = cli("report", str(reports / "run"), "--reclassify", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert proc.returncode == 0, proc.stderr
    assert "**2 new failure(s)**" in proc.stdout and "## Since the previous run" in proc.stdout
    assert "**New failures (1):** `a-hf_auto-base`" in proc.stdout
    assert step.read_text() == proc.stdout
    assert (reports / "run" / "summary.md").is_file() and (reports / "run" / "report.html").is_file()
    # Re-classified from the evidence on request: the NaN output error is named again, not left as recorded.
    assert "max abs error nan" in proc.stdout


def test_merge_combines_shards_and_refuses_mixed_versions(reports, tmp_path):
    shards = tmp_path / "shards"
    report_io.write(shards / "gw0" / "compat-report.jsonl", [rec("x", "passed")])
    report_io.write(shards / "gw1" / "compat-report.jsonl", [rec("y", "failed", "crash")])
    proc = cli("merge", str(shards), "-o", str(tmp_path / "merged.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert [r.id for r in report_io.read_file(tmp_path / "merged.jsonl")] == ["x-hf_auto-base", "y-hf_auto-base"]
    report_io.write(shards / "gw2" / "compat-report.jsonl", [rec("z", "passed", versions={**VERSIONS, "timm": "1.0"})])
    proc = cli("merge", str(shards))
    assert proc.returncode == 2 and "different versions" in proc.stderr and "Traceback" not in proc.stderr


def test_diff_lists_new_fixed_and_changed(reports):
    run = reports / "run"
    proc = cli("diff", str(run / "compat-report.prev.jsonl"), str(run / "compat-report.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"new_failures": ["a-hf_auto-base"], "fixed": ["b-hf_auto-base"],
                                       "changed": [], "new_scenarios_failing": ["c-hf_auto-base"], "not_run": [],
                                       "not_selected": [], "incomplete": []}
    same = cli("diff", str(run / "compat-report.jsonl"), str(run / "compat-report.jsonl"))
    assert same.returncode == 0 and "no changes" in same.stdout


@pytest.mark.parametrize("args,message", [
    (["report", "nowhere/"], "no such file or directory"),
    (["diff", "a.jsonl", "b.jsonl"], "a.jsonl: no such file or directory"),
    (["merge", "corrupt.jsonl"], "corrupt.jsonl:1:"),
    (["report", "notreport.jsonl"], "not a timm-compat record"),
    (["repro", "nope-hf_auto-base", "--report", "run"], "no scenario 'nope-hf_auto-base'"),
    (["report", "run", "--known-failures", "missing.toml"], "does not exist"),
])
def test_bad_input_is_one_clear_line_and_exit_2(reports, args, message):
    (reports / "corrupt.jsonl").write_text('{"id": "x", "mod\n' + rec("a", "passed").to_json() + "\n")
    (reports / "notreport.jsonl").write_text('{"hello": 1}\n')
    proc = cli(*args, cwd=reports)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_torn_last_line_is_tolerated(tmp_path):
    file = tmp_path / "r.jsonl"
    file.write_text(rec("a", "passed").to_json() + '\n{"id": "half')
    assert [r.id for r in report_io.read_file(file)] == ["a-hf_auto-base"]


def test_repro_prints_the_recorded_script_and_it_reproduces_the_failure(tmp_path):
    path = LoadingPath(name="faulty", summary="drops a key", roundtrip=drop_one_key_roundtrip)
    text = script("test_vit2-faulty-base", path, SPEC, (3, 160, 160), installed())
    report_io.write(tmp_path / "compat-report.jsonl", [
        Result(id="test_vit2-faulty-base", model="test_vit2", path="faulty", override="base", status="failed",
               signature="silent-reinit", versions=installed(), repro=text)])
    proc = cli("repro", "test_vit2-faulty-base", "--report", str(tmp_path))
    assert proc.returncode == 0 and proc.stdout == text
    ran = run_script(tmp_path, proc.stdout)
    assert ran.returncode != 0 and "blocks.0.ls1.gamma" in ran.stdout and "not faithful" in ran.stderr


def test_repro_builds_a_script_for_a_scenario_without_a_record(tmp_path):
    proc = cli("repro", "test_vit2-state_dict-base", "--report", str(tmp_path / "none"), "--generate")
    assert proc.returncode == 2, "a named report that does not exist is an error"
    proc = cli("repro", "test_vit2-state_dict-base", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "compat_tests" not in proc.stdout
    ran = run_script(tmp_path, proc.stdout)
    assert ran.returncode == 0 and "OK: loaded faithfully" in ran.stdout, ran.stderr[-2000:]
    proc = cli("repro", "test_vit2-telepathy-base", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown loading path 'telepathy'" in proc.stderr
