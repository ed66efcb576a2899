"""The cross_version path against real faults put back into today's timm: every snapshot an older release wrote
(fixtures/cross_version/) is replayed on the meta device, and a break is named for what changed.

Each fault is a real change to a real timm class at import time (a submodule renamed without teaching the filter,
a LayerScale added to a default build, a forward reading an attribute old objects never had), undone after the
test; no mock stands in for timm or torch.
"""

from __future__ import annotations

import io
import pickle
import shutil

import pytest
import timm
import torch

from compat_tests.core.result import Result
from compat_tests.core.scenario import Scenario
from compat_tests.paths.cross_version import cross_version_overrides
from compat_tests.paths.support import snapshots
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache

pytestmark = pytest.mark.skipif(not snapshots.producers(), reason="no committed snapshots")

TIMM_PRODUCERS = [p for p in snapshots.producers() if p.startswith("timm")]


def _cells(model: str, kinds: tuple[str, ...]) -> list[Result]:
    """Every snapshot cell of `model` of those kinds, run on the meta device as the cross-version tier runs it."""
    cache = SourceCache()
    return [run_scenario(Scenario(model, "cross_version", override, meta=True), cache)
            for override in cross_version_overrides(model) if override.as_dict()["cv_kind"] in kinds]


def test_todays_loaders_read_what_older_releases_wrote_for_a_stable_architecture():
    # resnet18's keys have not changed since timm 0.9.16: every release's state dicts load, headless ones too.
    results = _cells("resnet18", ("state_dict", "headless"))
    assert {r.override.endswith("_headless") for r in results} == {True, False}, "resnet18 has no snapshots"
    written = {p for r in results for p in r.evidence["extra"]["written_by"]}
    assert {"timm0.9.16", "timm1.0.30"} <= written
    for result in results:
        assert result.status == "passed", (result.id, result.signature, result.message)
        assert result.evidence["extra"]["pretrained_tags"] > 0


def test_a_renamed_submodule_fails_every_architecture_of_its_family_from_every_release(monkeypatch):
    from timm.models import convnext

    original = convnext.ConvNeXtBlock.__init__

    def renamed(self, *args, **kwargs):  # conv_dw -> dwconv, and checkpoint_filter_fn is not taught
        original(self, *args, **kwargs)
        self.add_module("dwconv", self._modules.pop("conv_dw"))

    monkeypatch.setattr(convnext.ConvNeXtBlock, "__init__", renamed)
    family = [m for m in timm.list_models("convnext*") if not m.startswith("convnext_xxlarge")]
    producers_seen = set()
    for model in family:
        for result in _cells(model, ("state_dict", "headless")):
            assert result.status == "failed", (result.id, result.status, result.message)
            assert result.signature == "old-checkpoint-keys-renamed", (result.id, result.signature)
            assert "conv_dw. -> " in result.message and "dwconv." in result.message, result.message
            producers_seen.update(result.evidence["extra"]["written_by"])
    assert producers_seen == {p for p in TIMM_PRODUCERS if any(
        p in s.producers for m in family for s in snapshots.snapshots_for(m))}


def test_a_layerscale_added_by_default_is_reported_as_keys_added_naming_the_module(monkeypatch):
    from timm.models import vision_transformer

    original = vision_transformer.Block.__init__

    def with_layerscale(self, *args, init_values=None, **kwargs):
        original(self, *args, init_values=1e-5 if init_values is None else init_values, **kwargs)

    monkeypatch.setattr(vision_transformer.Block, "__init__", with_layerscale)
    for model in ("vit_tiny_patch16_224", "deit_small_patch16_224", "vit_base_patch32_clip_224"):
        results = _cells(model, ("state_dict", "headless"))
        assert {r.override.endswith("_headless") for r in results} == {True, False}, model
        for result in results:
            assert result.status == "failed", (result.id, result.message)
            # A strict load raises; the headless load is non-strict (it drops a classifier) and says nothing.
            want = "old-checkpoint-keys-added" if result.override.endswith("_state_dict") else \
                "old-checkpoint-left-unfilled"
            assert result.signature == want, (result.id, result.signature, result.message)
            assert "blocks.{i}.ls1" in result.message and "blocks.{i}.ls2" in result.message, result.message


def test_a_module_removed_from_the_default_build_is_keys_removed(monkeypatch):
    from timm.models import vision_transformer

    original = vision_transformer.VisionTransformer.__init__

    def without_final_norm(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.norm = torch.nn.Identity()

    monkeypatch.setattr(vision_transformer.VisionTransformer, "__init__", without_final_norm)
    for result in _cells("vit_tiny_patch16_224", ("state_dict",)):
        assert result.signature == "old-checkpoint-keys-removed", (result.id, result.signature, result.message)
        assert "norm (2 keys)" in result.message, result.message


def test_a_changed_default_width_is_shape_changed(monkeypatch):
    from timm.models import vision_transformer

    original = vision_transformer.Block.__init__

    def narrower(self, *args, mlp_ratio=4.0, **kwargs):
        original(self, *args, mlp_ratio=mlp_ratio / 2, **kwargs)

    monkeypatch.setattr(vision_transformer.Block, "__init__", narrower)
    for result in _cells("vit_tiny_patch16_224", ("state_dict",)):
        assert result.signature == "old-checkpoint-shape-changed", (result.id, result.signature, result.message)
        assert "mlp.fc1.weight" in result.message, result.message


def test_a_filter_assuming_a_new_key_is_filter_raised(monkeypatch):
    from timm.models import vision_transformer

    original = vision_transformer.checkpoint_filter_fn

    def checkpoint_filter_fn(state_dict, model, *args, **kwargs):
        state_dict["reg_token"]  # a key only new checkpoints have, read unconditionally
        return original(state_dict, model, *args, **kwargs)

    monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn", checkpoint_filter_fn)
    for result in _cells("vit_tiny_patch16_224", ("state_dict",)):
        assert result.signature == "old-checkpoint-filter-raised", (result.id, result.signature, result.message)
        assert "KeyError" in result.message and "checkpoint_filter_fn" in result.message


def test_a_config_field_the_reader_no_longer_accepts_is_config_rejected(monkeypatch):
    transformers = pytest.importorskip("transformers")
    original = transformers.TimmWrapperConfig.__init__

    def strict(self, *args, **kwargs):
        if "num_features" in kwargs:  # every timm config.json has it
            raise TypeError("TimmWrapperConfig.__init__() got an unexpected keyword argument 'num_features'")
        original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.TimmWrapperConfig, "__init__", strict)
    results = _cells("resnet18", ("hub",))
    assert results
    for result in results:
        assert result.signature == "old-config-rejected", (result.id, result.signature, result.message)
        assert "`num_features`" in result.message, result.message


def test_a_reader_that_raises_on_an_old_folder_is_load_raised(monkeypatch):
    from timm.models import _hub

    def load_model_config_from_path(*args, **kwargs):
        raise ValueError("config.json format 0 is no longer supported")

    monkeypatch.setattr(_hub, "load_model_config_from_path", load_model_config_from_path)
    from timm.models import _factory

    if hasattr(_factory, "load_model_config_from_path"):
        monkeypatch.setattr(_factory, "load_model_config_from_path", load_model_config_from_path)
    results = _cells("resnet18", ("hub",))
    assert results
    for result in results:
        assert result.signature == "old-file-load-raised", (result.id, result.signature, result.message)
        assert "format 0" in result.message


def test_an_old_pickle_whose_forward_now_fails_otherwise_is_pickle_forward_broken(monkeypatch):
    from timm.models import resnet

    def forward(self, x):  # today's forward passes a new argument the old submodule's forward does not take
        return self.conv1(x, self.conv2)

    monkeypatch.setattr(resnet.BasicBlock, "forward", forward)
    # As the tier's session does for what it selects: the pickles the cache lacks are generated first.
    assert not (problems := snapshots.ensure_pickles(TIMM_PRODUCERS, print, ["resnet18"])), problems
    results = _cells("resnet18", ("pickle",))
    assert results
    for result in results:
        assert result.signature == "old-pickle-forward-broken", (result.id, result.signature, result.message)
        assert "TypeError" in result.message


def _aa_read_directly(self, x):
    x = self.conv(x)
    x = self.bn(x)
    return self.aa(x) if self.aa is not None else x  # as timm 1.0.7-1.0.11 read it


@pytest.mark.slow
def test_convnormact_reading_aa_fails_the_old_pickles_of_its_families(monkeypatch):
    from timm.layers import ConvNormAct

    old = [p for p in ("timm0.9.16", "timm1.0.3") if p in TIMM_PRODUCERS]
    globs = ["cs*", "darknet*", "gernet*", "regnet*", "resnet*ts", "eca_resnet*ts"]
    problems = snapshots.ensure_pickles(old, print, globs)
    assert not problems, problems
    monkeypatch.setattr(ConvNormAct, "forward", _aa_read_directly)
    family = [m for m in timm.list_models(globs)
              if any(p in old for s in snapshots.snapshots_for(m) if s.kind == "pickle" for p in s.producers)]
    assert len(family) > 20
    failed = 0
    for model in family:
        for result in _cells(model, ("pickle",)):
            if not set(result.evidence.get("extra", {}).get("written_by", [])) & set(old):
                continue
            pickled = snapshots.pickle_path(result.override.rsplit("_", 1)[0], model).read_bytes()
            if b"ConvNormAct" not in pickled:
                continue
            assert result.status == "failed", (result.id, result.status, result.message)
            assert result.signature == "missing-attribute-after-unpickle", (result.id, result.signature)
            assert "ConvNormAct.aa" in result.message, result.message
            failed += 1
    assert failed > 20


class _Planted:
    """What a tampered pickle would do when unpickled: leave a file behind."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (shutil.copyfile, (__file__, self.marker))


def test_a_tampered_pickle_is_refused_before_it_is_unpickled(tmp_path, monkeypatch):
    model = "resnet18"
    snap = next(s for s in snapshots.snapshots_for(model) if s.kind == "pickle")
    producer = snap.producers[0]
    monkeypatch.setattr(snapshots, "CACHE", tmp_path / "cache")
    target = snapshots.pickle_path(producer, model)
    target.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "unpickled"
    buffer = io.BytesIO()
    torch.save(_Planted(str(marker)), buffer, pickle_module=pickle)
    target.write_bytes(buffer.getvalue())
    override = next(o for o in cross_version_overrides(model) if o.as_dict()["cv_digest"] == snap.digest)
    result = run_scenario(Scenario(model, "cross_version", override, meta=True), SourceCache())
    assert result.status == "failed" and result.signature == "legacy-artifact-tampered", (result.signature,
                                                                                           result.message)
    assert not marker.exists(), "the tampered pickle was unpickled"
