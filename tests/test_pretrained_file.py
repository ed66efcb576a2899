"""The pretrained_file path: timm's real pretrained loader under overrides, and faults put back into it."""

import torch
from timm.models import vision_transformer

from compat_tests.adapted import applicable_overrides, skipped_overrides
from compat_tests.runner import run_scenario
from compat_tests.scenario import Override, Scenario
from compat_tests.source import SourceCache


def _run(model: str, override: Override):
    return run_scenario(Scenario(model, "pretrained_file", override), SourceCache())


def test_override_axis_applies_only_where_the_architecture_accepts_it():
    vit = {o.name for o in applicable_overrides("test_vit2")}
    assert {"patch_size_8", "patch_size_32", "in_chans_1", "num_classes_0", "dynamic_img_size"} <= vit
    skipped = skipped_overrides("resnet18")
    assert "img_size" in " ".join(skipped) and all(skipped.values())  # each with its reason
    assert not any(o.name.startswith("img_size") for o in applicable_overrides("resnet18"))


def test_patch_and_channel_overrides_pass_and_shrink_the_output_as_asked():
    for override in (Override.of("patch_size_8", patch_size=8), Override.of("in_chans_1", in_chans=1),
                     Override.of("num_classes_0", num_classes=0)):
        result = _run("test_vit2", override)
        assert result.status == "passed", (override, result.message)
        assert result.evidence["output"]["ok"]


def test_skipped_patch_resample_is_named(monkeypatch):
    # The filter's resample step put back to a no-op: the 16px kernel reaches an 8px model.
    monkeypatch.setattr(vision_transformer, "resample_patch_embed", lambda v, *a, **k: v)
    result = _run("test_vit2", Override.of("patch_size_8", patch_size=8))
    assert result.status == "failed" and result.signature == "patch-resample-skipped", result.message


def test_fresh_values_of_the_right_shape_are_a_failure_too(monkeypatch):
    monkeypatch.setattr(vision_transformer, "resample_patch_embed",
                        lambda v, new_size, *a, **k: torch.randn(*v.shape[:2], *new_size))
    result = _run("test_vit2", Override.of("patch_size_8", patch_size=8))
    assert result.status == "failed" and result.signature == "patch-resample-skipped"
    assert "resampled values" in result.message


def test_skipped_pos_embed_resample_is_named(monkeypatch):
    monkeypatch.setattr(vision_transformer, "resample_abs_pos_embed", lambda v, *a, **k: v)
    result = _run("test_vit2", Override.of("img_size_96", img_size=96))
    assert result.status == "failed" and result.signature == "pos-embed-resample-skipped", result.message
