"""The export paths against real timm models: blame goes to the model, to the fusion, or to the exporter."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from timm.models import byobnet

from compat_tests.core.scenario import Override, Scenario
from compat_tests.judge.reparam import EXPORT_RTOL, export_check
from compat_tests.paths import all_paths
from compat_tests.repro import script as repro
from compat_tests.run.runner import run_scenario
from compat_tests.signatures.catalog import is_limitation
from compat_tests.source.models import SourceCache

TORCH, JIT = Override.of("torch_export", exporter="torch_export"), Override.of("jit", exporter="jit")


@pytest.fixture(scope="module")
def cache() -> SourceCache:
    return SourceCache(size=2)


def test_export_check_uses_the_judges_tolerance():
    assert inspect.signature(export_check).parameters["rtol"].default == EXPORT_RTOL


def test_a_fused_repvgg_exports_and_matches_eager(cache):
    result = run_scenario(Scenario("repvgg_a0", "export", TORCH), cache)
    assert result.status == "passed", result.message
    assert result.evidence["extra"]["fused"] is True


def _off_when_exporting(real):
    """A forward that computes something else under torch.export than eagerly (export-only code paths
    such as timm's `is_exportable()` layers are where this happens)."""

    def forward(self, x):
        out = real(self, x)
        return out * 1.01 if torch.compiler.is_exporting() else out

    return forward


def test_an_export_that_disagrees_with_eager_is_a_mismatch(cache, monkeypatch):
    monkeypatch.setattr(byobnet.RepVggBlock, "forward", _off_when_exporting(byobnet.RepVggBlock.forward))
    result = run_scenario(Scenario("repvgg_a0", "export", TORCH), cache)
    assert result.status == "failed" and result.signature == "export-mismatch:torch_export", result.message
    output = result.evidence["output"]
    assert output["max_error"] > output["tolerance"]


@pytest.fixture
def repghost_fusion_bug(monkeypatch):
    """RepGhost's switch_to_deploy as timm 1.0.31 ships it: ModuleLists replaced by plain [] lists, which
    TorchScript cannot type. Injected, so this test keeps its meaning once timm fixes it."""
    from timm.models import repghost

    real = repghost.RepGhostModule.switch_to_deploy

    def buggy(self):
        real(self)
        for name in ("fusion_conv", "fusion_bn"):
            if name in self._modules:
                del self._modules[name]
            object.__setattr__(self, name, [])

    monkeypatch.setattr(repghost.RepGhostModule, "switch_to_deploy", buggy)


def test_a_fusion_that_breaks_scripting_is_the_models_bug(repghost_fusion_bug):
    # The unfused model scripts fine; only the fused one does not.
    result = run_scenario(Scenario("repghostnet_050", "export", JIT), SourceCache())
    assert result.status == "failed", result.message
    assert result.signature == "export-broken-by-reparam:jit", result.message
    assert result.evidence["extra"]["unfused_exports"] is True
    assert not is_limitation(result.signature)


def test_an_architecture_the_exporter_cannot_handle_is_a_limitation(cache):
    # Real: Hiera is outside TorchScript (timm's own tests exclude hiera_* from scripting); nothing to fuse.
    result = run_scenario(Scenario("hiera_tiny_224", "export", JIT), cache)
    assert result.signature == "export-unsupported:jit", result.message
    assert result.evidence["extra"]["fused"] is False
    assert result.evidence["extra"]["stage"] == "export"
    assert is_limitation(result.signature)
    assert result.status == "skipped", "an exporter's own limit is reported, not counted as a failure"


def test_the_repro_of_a_failing_cell_fails_the_same_way_in_plain_python(tmp_path, cache):
    scenario = Scenario("repghostnet_050", "export", JIT)
    if run_scenario(scenario, cache).status != "failed":
        pytest.skip("this timm release scripts a fused RepGhost: the real failure this repro replays is fixed")
    source = cache.get(scenario.model, {})
    script = repro.script(scenario.id, all_paths()["export"], {"name": scenario.model, "kwargs": JIT.as_dict(),
                                                               "seed": 0, "source_kwargs": {}}, source.input_size, {})
    (tmp_path / "repro.py").write_text(script)
    done = subprocess.run([sys.executable, "repro.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "jit failed at stage export" in done.stdout
    assert "fusion_conv" in done.stderr  # the attribute RepGhost turned into a list
