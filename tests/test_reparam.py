"""The reparam paths against real timm code, with faults put back into real reparameterize methods."""

from __future__ import annotations

import contextlib

import pytest
import timm
import torch
from timm.models import byobnet, nextvit

from compat_tests.core.scenario import BASE, Override, Scenario
from compat_tests.judge.reparam import REPARAM_RTOL, compare_scaled, reparam_check
from compat_tests.judge.reparameterizable import discover, none_attributes
from compat_tests.paths import all_paths
from compat_tests.run.runner import run_scenario
from compat_tests.run.tiers import SMOKE_FAMILIES
from compat_tests.source.models import SourceCache


@pytest.fixture(scope="module")
def cache() -> SourceCache:
    return SourceCache(size=3)


def test_discovery_reads_the_live_code():
    assert discover("resnet18") == ()
    assert "RepVggBlock.reparameterize" in discover("repvgg_a0")
    assert "NextConvBlock.reparameterize" in discover("nextvit_small")
    reparam = all_paths()["reparam"]
    assert reparam.overrides("resnet18") == []
    assert reparam.overrides("repvgg_a0") == [BASE]
    # Exporters apply to every model: the unfused model when there is nothing to fuse.
    assert [o.name for o in all_paths()["export"].overrides("resnet18")] == ["torch_export", "jit", "onnx"]


@pytest.mark.parametrize("model", SMOKE_FAMILIES["reparam"])
def test_every_smoke_reparam_family_is_discovered(model):
    if not timm.is_model(model):
        pytest.skip(f"timm {timm.__version__} has no {model}")
    assert discover(model), f"{model} has nothing reparameterize_model would fuse"


def test_repro_checks_use_the_judges_tolerance():
    import inspect

    assert inspect.signature(reparam_check).parameters["rtol"].default == REPARAM_RTOL


def test_compare_scaled_is_relative_to_the_output_scale():
    reference = torch.full((2, 3), 0.1)
    assert compare_scaled(reference, reference + 0.9e-5, 1e-4)["ok"]
    assert not compare_scaled(reference, reference + 2e-5, 1e-4)["ok"]  # the base oracle's 1e-5 x max(1, .) passes this
    assert not compare_scaled(reference, torch.zeros(2, 4), 1e-4)["ok"]


def _first(model: torch.nn.Module, cls: type) -> str:
    return next(name for name, m in model.named_modules() if isinstance(m, cls))


def _leave_norm_none(real):
    """NextViT's old bug: the norm folded into mlp.fc1 is set to None, not nn.Identity, yet forward calls it."""

    def reparameterize(self):
        was_fused = self.is_fused
        real(self)
        if not was_fused:
            self.norm = None

    return reparameterize


def test_nextvit_reparam_passes_without_a_fault(cache):
    result = run_scenario(Scenario("nextvit_small", "reparam"), cache)
    assert result.status == "passed", result.message
    assert result.evidence["output"]["max_error"] <= result.evidence["output"]["tolerance"]


def test_norm_left_none_is_named_by_attribute_path(cache, monkeypatch):
    monkeypatch.setattr(nextvit.NextConvBlock, "reparameterize", _leave_norm_none(nextvit.NextConvBlock.reparameterize))
    result = run_scenario(Scenario("nextvit_small", "reparam"), cache)
    assert result.status == "failed"
    assert result.signature == "none-module-called", result.message
    first_block = _first(cache.get("nextvit_small", {}).model, nextvit.NextConvBlock)
    assert f"{first_block}.norm is None" in result.message
    assert result.evidence["extra"]["none_called"] == f"{first_block}.norm"
    assert f"{first_block}.norm" in result.evidence["extra"]["none_attributes"]


def test_the_none_call_is_blamed_on_the_model_not_the_exporter(cache, monkeypatch):
    # NextViT's bug also killed ONNX export: the cell must name the model's bug, not an exporter limit.
    monkeypatch.setattr(nextvit.NextConvBlock, "reparameterize", _leave_norm_none(nextvit.NextConvBlock.reparameterize))
    result = run_scenario(Scenario("nextvit_small", "export", Override.of("onnx", exporter="onnx")), cache)
    assert result.status == "failed" and result.signature == "none-module-called", result.message
    assert result.evidence["extra"]["stage"] == "eager"


def test_none_attributes_compares_with_the_unfused_model():
    unfused = torch.nn.Sequential(torch.nn.BatchNorm2d(2), torch.nn.Identity())
    fused = torch.nn.Sequential(torch.nn.BatchNorm2d(2), torch.nn.Identity())
    fused[0] = None
    assert none_attributes(unfused, fused) == ["0"]


@contextlib.contextmanager
def _without(branch_owner, name):
    saved = getattr(branch_owner, name)
    object.__setattr__(branch_owner, name, None) if name not in branch_owner._modules else setattr(
        branch_owner, name, None)
    try:
        yield
    finally:
        setattr(branch_owner, name, saved)


def _drop_identity(real):
    """A fusion that forgets the identity (BatchNorm) branch: the fused conv misses x's own contribution."""

    def get_kernel_bias(self):
        with _without(self, "identity"):
            return real(self)

    return get_kernel_bias


def _wrong_eps(real):
    """A fusion that folds BatchNorm with eps 1e-3 instead of the layer's 1e-5: a subtle, realistic drift."""

    def fuse_bn_tensor(self, branch):
        bn = branch.bn if hasattr(branch, "bn") else branch
        saved, bn.eps = bn.eps, 1e-3
        try:
            return real(self, branch)
        finally:
            bn.eps = saved

    return fuse_bn_tensor


@pytest.mark.parametrize("method, fault", [("_get_kernel_bias", _drop_identity), ("_fuse_bn_tensor", _wrong_eps)])
def test_fused_output_drift_is_caught(cache, monkeypatch, method, fault):
    clean = run_scenario(Scenario("repvgg_a0", "reparam"), cache)
    assert clean.status == "passed", clean.message
    monkeypatch.setattr(byobnet.RepVggBlock, method, fault(getattr(byobnet.RepVggBlock, method)))
    result = run_scenario(Scenario("repvgg_a0", "reparam"), cache)
    assert result.status == "failed" and result.signature == "reparam-output-drift", result.message
    output = result.evidence["output"]
    assert output["max_error"] > output["tolerance"] == pytest.approx(REPARAM_RTOL * output["scale"])
    assert f"{output['max_error']:.3g}" in result.message
    # The clean fusion sits far below the tolerance, the fault far above: the margin the docstring claims.
    assert clean.evidence["output"]["max_error"] * 10 < output["tolerance"] < output["max_error"]


def test_fused_state_dict_and_pickle_reload_equal_the_fused_model(cache):
    result = run_scenario(Scenario("repvgg_a0", "reparam_roundtrip"), cache)
    assert result.status == "passed", result.message
    assert result.evidence["extra"]["saves"] == {"state_dict": "ok", "pickle": "ok"}
