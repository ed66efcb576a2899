"""Fault injection through the whole runner: a real bug put back into the real load path."""

import torch

from compat_tests.core.scenario import Override, Scenario
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache


def legacy_transformers_rename(state):
    """transformers <= 4.48's from_pretrained rule: any key with gamma/beta becomes weight/bias."""
    return {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in state.items()}


def test_state_dict_path_passes_on_a_layerscale_model():
    result = run_scenario(Scenario("test_vit2", "state_dict"), SourceCache())
    assert result.status == "passed", result.message


def test_the_legacy_gamma_rename_is_reported_by_name(monkeypatch):
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: legacy_transformers_rename(real_load(*a, **kw)))
    result = run_scenario(Scenario("test_vit2", "state_dict"), SourceCache())
    assert result.status == "failed"
    assert result.signature == "layerscale-gamma-renamed"
    assert "blocks.0.ls1.gamma" in result.message
    assert "def state_dict_roundtrip" in result.repro


def test_unknown_model_is_a_recorded_error_with_suggestions():
    result = run_scenario(Scenario("resnet_18", "state_dict"), SourceCache())
    assert result.status == "error" and result.signature == "unknown-model"
    assert "resnet18" in result.message


def test_a_model_that_cannot_be_built_blames_create_model_and_errors_elsewhere():
    cache = SourceCache()
    override = Override.of("bogus", no_such_argument=1)
    baseline = run_scenario(Scenario("resnet18", "create_model", override), cache)
    other = run_scenario(Scenario("resnet18", "state_dict", override), cache)
    assert baseline.status == "failed" and baseline.signature == "exception:TypeError"
    assert other.status == "error" and other.signature == "source-unbuildable"


STALE_TOKENIZERS = '''
import importlib.metadata as metadata

_real = metadata.version


def version(name):  # a tokenizers release outside transformers' own range, as a stale environment has
    return "0.1.0" if name == "tokenizers" else _real(name)


metadata.version = version
'''


def test_a_transformers_that_fails_on_import_is_an_error_not_a_skip(tmp_path):
    """transformers refuses to import beside a tokenizers out of its range (the real check it makes at import):
    every cell needing it is an error saying so, the run is red, and the timm-only cells still run."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    fault = tmp_path / "fault"
    fault.mkdir()
    (fault / "sitecustomize.py").write_text(STALE_TOKENIZERS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(fault), os.environ.get("PYTHONPATH")]))}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pytest", str(root / "compat_tests"), "-q", "-p", "no:cacheprovider",
                           "--models", "test_vit2", "--paths", "state_dict,hf_auto,hf_custom",
                           "--report-dir", str(tmp_path / "report")], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    records = {r["path"]: r for r in map(json.loads, (tmp_path / "report" / "compat-report.jsonl").open())
               if "path" in r}
    assert records["state_dict"]["status"] == "passed"
    for path in ("hf_auto", "hf_custom"):
        record = records[path]
        assert (record["status"], record["signature"]) == ("error", "broken-install"), record["message"]
        assert record["message"].startswith("transformers is installed but cannot be imported")
        assert "tokenizers" in record["message"]


def test_the_hub_writers_need_no_export_timm_added_in_1_0_16(monkeypatch):
    """timm up to 1.0.15 has save_for_hf in timm.models._hub only: the paths writing hub folders for transformers
    still get past writing one (to today's known kwarg-conflict, which comes after it)."""
    import timm.models

    from compat_tests.paths import all_paths

    monkeypatch.delattr(timm.models, "save_for_hf")
    bf16 = next(o for o in all_paths()["checkpoint_dtype"].overrides("test_vit2") if o.name == "bf16_hf_auto")
    cells = [Scenario("test_vit2", "hf_auto"), Scenario("test_vit2", "checkpoint_dtype", bf16)]
    for scenario in cells:
        result = run_scenario(scenario, SourceCache())
        assert result.signature == "kwarg-conflict", result.message


# What transformers 5.25.0 declares beyond 5.24.0: without kernels it raises 'Kernels are not available' in every
# from_pretrained, since it kernelizes by default.
KERNELS = "kernels<0.20,>=0.19.1"


def test_a_transformers_missing_a_package_it_requires_is_an_error_not_a_break(monkeypatch):
    """A transformers installed without a package it declares (5.25.0 beside no kernels, as a `--no-deps` install
    leaves it): its cells are errors naming what is missing, not 154 new failures; timm's own cells still run."""
    import importlib.metadata as metadata
    import importlib.util

    from compat_tests.core import versions

    assert importlib.util.find_spec("kernels") is None, "the fault needs an environment without kernels"
    real = metadata.requires
    monkeypatch.setattr(metadata, "requires", lambda name: [*(real(name) or []), KERNELS]
                        if name == "transformers" else real(name))
    versions.absent_requirements.cache_clear()
    try:
        cache = SourceCache()
        broken = [run_scenario(Scenario("test_vit2", path), cache) for path in ("hf_auto", "hf_custom")]
        timm_only = run_scenario(Scenario("test_vit2", "state_dict"), cache)
    finally:
        versions.absent_requirements.cache_clear()
    for result in broken:
        assert (result.status, result.signature) == ("error", "broken-install"), result.message
        assert "transformers" in result.message and f"{KERNELS} not installed" in result.message
    assert timm_only.status == "passed", timm_only.message


def test_only_unconditional_requirements_count_as_absent(monkeypatch):
    import importlib.metadata as metadata

    from compat_tests.core import versions

    declared = [f'{KERNELS}; extra == "kernels"', 'tomli>=1.1; python_version < "3.0"', "torch", "packaging>=1"]
    monkeypatch.setattr(metadata, "requires", lambda name: declared if name == "transformers" else None)
    versions.absent_requirements.cache_clear()
    try:
        assert versions.absent_requirements("transformers") == []
        declared.append("no-such-distribution-anywhere>=1")
        versions.absent_requirements.cache_clear()
        assert versions.absent_requirements("transformers") == ["no-such-distribution-anywhere>=1"]
    finally:
        versions.absent_requirements.cache_clear()
