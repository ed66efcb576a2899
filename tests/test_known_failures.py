"""The known-failures baseline: parsing, matching, expiry; and end to end, a real fault in a real matrix run
turning from failed (exit 1) into xfailed (exit 0) with an entry, and into xpassed once the fault is gone.

Also a pytest plugin (`-p tests.test_known_failures`): with TIMM_COMPAT_FAULT=gamma-rename it puts
transformers' legacy gamma->weight rename into torch.load inside the matrix run.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from compat_tests.core.result import Result
from compat_tests.signatures import known_failures
from compat_tests.signatures.known_failures import KnownFailuresError, parse

from .test_matrix_run import run_matrix

TODAY = date(2026, 11, 24)


def pytest_configure(config: pytest.Config) -> None:
    """Plugin hook (only when loaded with -p): the fault, in the matrix process and its workers."""
    if os.environ.get("TIMM_COMPAT_FAULT") == "gamma-rename":
        import torch

        real_load = torch.load

        def legacy_rename_load(*args, **kwargs):
            state = real_load(*args, **kwargs)
            return {k.replace("gamma", "weight"): v for k, v in state.items()}

        torch.load = legacy_rename_load


ENTRY = """
[[known]]
id = "test_vit2-state_dict-*"
signature = "layerscale-gamma-renamed"
reason = "fault injected by the selftest"
upstream = "not yet filed"
"""


def result(status: str, signature: str = "", rid: str = "test_vit2-state_dict-base") -> Result:
    model, path, override = rid.removesuffix("@meta").split("-")
    return Result(id=rid, model=model, path=path, override=override, status=status, signature=signature)


def test_a_matching_failure_is_xfailed_and_a_listed_pass_is_xpassed():
    baseline = parse(ENTRY, today=TODAY)
    r = baseline.apply(result("failed", "layerscale-gamma-renamed"))
    assert r.status == "xfailed" and r.known["reason"] == "fault injected by the selftest"
    assert baseline.apply(result("passed")).status == "xpassed"
    assert baseline.apply(result("passed", rid="resnet18-state_dict-base")).status == "passed"


def test_a_listed_scenario_failing_for_another_reason_is_a_new_failure():
    r = parse(ENTRY, today=TODAY).apply(result("failed", "missing-keys"))
    assert r.status == "failed" and "known failure is layerscale-gamma-renamed" in r.message


def test_a_message_glob_excuses_one_cause_and_not_another_with_the_same_signature():
    entry = ENTRY.replace('signature = "layerscale-gamma-renamed"',
                          'signature = "missing-attribute-after-unpickle"\nmessage = "*reads: Attention.gate (*"')
    baseline = parse(entry, today=TODAY)
    known = result("failed", "missing-attribute-after-unpickle")
    known.message = "an object pickled ... reads: Attention.gate (vit/timm0.9.16_pickle, ...)"
    other = result("failed", "missing-attribute-after-unpickle")
    other.message = "an object pickled ... reads: EvaAttention.gate (eva/timm0.9.16_pickle, ...)"
    assert baseline.apply(known).status == "xfailed" and known.known["message"] == "*reads: Attention.gate (*"
    assert baseline.apply(other).status == "failed"
    with pytest.raises(KnownFailuresError, match="message must be"):
        parse(ENTRY + "message = 3\n", today=TODAY)


def test_apply_is_idempotent_and_rejudges_old_statuses():
    baseline = parse(ENTRY, today=TODAY)
    r = baseline.apply(baseline.apply(result("failed", "layerscale-gamma-renamed")))
    assert r.status == "xfailed"
    assert known_failures.Baseline().apply(r).status == "failed", "an empty baseline excuses nothing"


def test_id_may_be_a_list_of_globs_and_expiry_is_a_date():
    baseline = parse("""
[[known]]
id = ["a-hf_auto-*", "b-hf_auto-*"]
signature = "kwarg-*"
reason = "r"
upstream = "https://example.invalid/issue"
expires = 2026-11-01
""", today=TODAY)
    entry = baseline.entries[0]
    assert entry.covers("b-hf_auto-base", "kwarg-conflict") and not entry.covers("c-hf_auto-base", "kwarg-conflict")
    assert baseline.expired == [entry] and baseline.active == []
    assert baseline.apply(result("failed", "kwarg-conflict", "a-hf_auto-base")).status == "failed"


@pytest.mark.parametrize("text,message", [
    ("[[known]]\nid = 'x'\n", "reason, upstream"),
    ("[[known]]\nid='x'\nsignature='s'\nreason='r'\nupstream='u'\nexpires='soon'\n", "TOML date"),
    ("[[known]]\nid='x'\nsignature='s'\nreason='r'\nupstream='u'\nwhy='?'\n", "unknown field(s) why"),
    ("known = 3", "array of tables"),
    ("[[known]\n", "not valid TOML"),
    ("[[knwon]]\nid='x'\n", "unknown top-level key(s) knwon"),
])
def test_bad_files_are_clear_errors(text, message):
    with pytest.raises(KnownFailuresError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text, "kf.toml")


def test_a_missing_named_file_is_an_error_and_none_is_empty(tmp_path):
    with pytest.raises(KnownFailuresError, match="does not exist"):
        known_failures.load(tmp_path / "nope.toml")
    assert known_failures.load("").entries == []


def test_the_shipped_baseline_parses_and_names_todays_breaks():
    baseline = known_failures.load(known_failures.DEFAULT_FILE)
    signatures = {e.signature for e in baseline.entries}
    assert {"kwarg-conflict", "nonpersistent-buffer-not-rebuilt"} <= signatures
    assert all(e.reason and e.upstream for e in baseline.entries)


# End to end: the matrix as CI runs it, on one tiny model and one path.

def matrix(tmp_path: Path, baseline: str | None, fault: bool, monkeypatch, name: str):
    out = tmp_path / name
    out.mkdir()
    args = ["--models", "test_vit2", "--paths", "state_dict", "--junitxml", str(out / "junit.xml")]
    if fault:
        monkeypatch.setenv("TIMM_COMPAT_FAULT", "gamma-rename")
        args += ["-p", "tests.test_known_failures"]
    else:
        monkeypatch.delenv("TIMM_COMPAT_FAULT", raising=False)
    if baseline is None:
        args += ["--known-failures", ""]
    else:
        (out / "kf.toml").write_text(baseline)
        args += ["--known-failures", str(out / "kf.toml")]
    proc, records = run_matrix(out, *args)
    junit = ET.parse(out / "junit.xml").getroot().find(".//testcase")
    return proc, records[0], junit


def test_baseline_end_to_end(tmp_path, monkeypatch):
    proc, record, _ = matrix(tmp_path, None, True, monkeypatch, "new")
    assert proc.returncode == 1 and record["status"] == "failed", proc.stdout[-2000:]
    assert record["signature"] == "layerscale-gamma-renamed"

    proc, record, junit = matrix(tmp_path, ENTRY, True, monkeypatch, "known")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert record["status"] == "xfailed" and record["known"]["upstream"] == "not yet filed"
    assert junit.find("skipped").get("type") == "pytest.xfail"
    assert "known failures (xfailed" in proc.stdout

    proc, record, junit = matrix(tmp_path, ENTRY, False, monkeypatch, "fixed")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert record["status"] == "xpassed"
    assert "fixed upstream, remove the entry" in proc.stdout and "1 xpassed" in proc.stdout
    assert junit.find("failure") is None and junit.find("skipped") is None

    expired = ENTRY + "expires = 2020-01-01\n"
    proc, record, _ = matrix(tmp_path, expired, False, monkeypatch, "expired")
    assert proc.returncode == 1 and record["status"] == "passed"
    assert "EXPIRED known-failures entries" in proc.stdout


def test_when_scopes_an_entry_to_the_releases_a_cell_recorded():
    baseline = parse(ENTRY + 'when = { transformers = ">=5", timm = ">=1.0.20" }\n', today=TODAY)
    new = {"timm": "1.0.31", "transformers": "5.23.0", "torch": "2.14.1+cu130"}
    old = {"timm": "0.9.16", "transformers": "4.47.1"}
    failing = result("failed", "layerscale-gamma-renamed")
    assert baseline.apply(Result(**{**vars(failing), "versions": new})).status == "xfailed"
    assert baseline.apply(Result(**{**vars(failing), "versions": old})).status == "failed"
    # Under the old releases a pass says nothing about the entry: not xpassed.
    assert baseline.apply(Result(**{**vars(result("passed")), "versions": old})).status == "passed"
    main = {"timm": "1.0.32.dev0", "transformers": "5.24.0.dev0"}
    assert baseline.apply(Result(**{**vars(failing), "versions": main})).status == "xfailed"
    assert baseline.apply(failing).status == "failed", "no recorded versions: the scoped entry cannot apply"


@pytest.mark.parametrize("when,message", [("'>=5'", "when must be a table"),
                                          ("{timm='new'}", "not a version specifier"),
                                          ("{open_clip='>=3'}", "results record only python, torch")])
def test_a_bad_when_is_a_clear_error(when, message):
    with pytest.raises(KnownFailuresError, match=message):
        parse(f"[[known]]\nid='x'\nsignature='s'\nreason='r'\nupstream='u'\nwhen={when}\n", "kf.toml")


def test_a_structural_pass_does_not_clear_a_failure_seen_only_in_values():
    baseline = parse(ENTRY.replace("layerscale-gamma-renamed", "module-config-differs"), today=TODAY)
    assert baseline.apply(result("passed", rid="test_vit2-state_dict-base@meta")).status == "passed"
    assert baseline.apply(result("passed")).status == "xpassed"
    keys = parse(ENTRY, today=TODAY)  # a key rename shows on meta too: there a pass is news
    assert keys.apply(result("passed", rid="test_vit2-state_dict-base@meta")).status == "xpassed"


def test_a_class_of_models_entry_excuses_failures_but_a_pass_is_just_a_pass():
    entry = ENTRY.replace('"test_vit2-state_dict-*"', '"*-state_dict-*"') + "xpass = false\nexpires = 2027-01-01\n"
    baseline = parse(entry, today=TODAY)
    assert baseline.apply(result("failed", "layerscale-gamma-renamed")).status == "xfailed"
    assert baseline.apply(result("passed")).status == "passed"
    with pytest.raises(KnownFailuresError, match="needs an expires date"):
        parse(ENTRY + "xpass = false\n", "kf.toml")
