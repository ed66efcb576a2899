"""Foreign layouts: the documented maps against timm's converters, the CLIP early-return bug put back
into the real checkpoint_filter_fn, and the InternViT layout timm cannot read."""

import pytest
import timm
import torch
from timm.models import vision_transformer

from compat_tests.core.scenario import Override, Scenario
from compat_tests.paths.support.foreign_layouts import foreign_to_timm, write_foreign
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache

CLIP_PATCH8 = Override.of("openai_clip_patch_size_8", layout="openai_clip", num_classes=512, patch_size=8)


def test_dinov2_map_agrees_with_timms_converter_both_ways():
    model = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False).eval()
    original = write_foreign("dinov2_original", model, "vit_small_patch14_reg4_dinov2")
    assert {"mask_token", "register_tokens", "blocks.0.ls1.gamma"} <= set(original)
    ours = foreign_to_timm("dinov2_original", dict(original))
    theirs = vision_transformer._convert_dinov2(dict(original), model)
    assert set(ours) == set(theirs) == set(model.state_dict())
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # and back: everything but the folded class position returns bit-exact
    source = model.state_dict()
    assert [k for k in source if not torch.equal(ours[k], source[k])] == ["cls_token"]
    assert torch.allclose(ours["cls_token"], source["cls_token"], atol=1e-6)


def _clip_early_return(real):
    """The old bug: CLIP checkpoints returned right after conversion, skipping every resample."""

    def filter_fn(state_dict, model, *args, **kwargs):
        for prefix in ("visual.", "module.visual."):
            if prefix + "class_embedding" in state_dict:
                return vision_transformer._convert_openai_clip(state_dict, model, prefix=prefix)
        return real(state_dict, model, *args, **kwargs)

    return filter_fn


def test_clip_early_return_is_reported_as_patch_resample_skipped(monkeypatch):
    cache = SourceCache()
    scenario = Scenario("vit_base_patch16_clip_224", "foreign", CLIP_PATCH8)
    assert run_scenario(scenario, cache).status == "passed"
    monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn",
                        _clip_early_return(vision_transformer.checkpoint_filter_fn))
    result = run_scenario(scenario, cache)
    assert result.status == "failed" and result.signature == "patch-resample-skipped", result.message
    assert "patch_embed.proj.weight" in result.message


def test_internvit_layout_fails_with_the_inferred_renames():
    result = run_scenario(Scenario("test_vit2", "foreign", Override.of("internvit", layout="internvit")), SourceCache())
    assert result.status == "failed" and result.signature == "key-layout-mismatch", result.message
    assert "encoder.layers.{i}." in result.message and "blocks.{i}." in result.message


@pytest.mark.parametrize("meta", [False, True], ids=["numeric", "structural"])
def test_a_non_strict_load_that_places_no_key_is_a_silent_reinit(monkeypatch, meta):
    """timm builds every SigLIP ViT without a MAP head with pretrained_strict=False (its checkpoint's attn_pool has
    no place), so an InternViT file matches no key, timm only logs them, and the model keeps its initial weights.
    That rule put onto test_vit2: the cell that fails loudly as key-layout-mismatch turns silent-reinit, and its
    repro, with the same rule, reproduces that in plain Python. On meta, where no value can show it, the cell names
    the tensors no copy of the load reached."""
    import subprocess
    import sys

    fault = (
        "from timm.models import vision_transformer as _vt\n"
        "_build = _vt.build_model_with_cfg\n"
        "_vt.build_model_with_cfg = lambda *a, **k: _build(*a, **{**k, 'pretrained_strict': False})\n"
    )
    namespace: dict = {}
    exec(fault.replace("_vt.build_model_with_cfg =", "_lenient ="), namespace)
    monkeypatch.setattr(vision_transformer, "build_model_with_cfg", namespace["_lenient"])
    internvit = Scenario("test_vit2", "foreign", Override.of("internvit", layout="internvit"), meta=meta)
    result = run_scenario(internvit, SourceCache())
    assert (result.status, result.signature) == ("failed", "silent-reinit"), result.message
    if meta:  # every tensor but the five whose InternViT names are timm's own (reg_token, fc_norm, head)
        state = timm.create_model("test_vit2", pretrained=False).state_dict()
        assert result.evidence["counts"]["unwritten"] == len(state) - 5, result.message
        assert "never written by the load" in result.message
    else:
        assert "blocks.0.norm1.weight" in result.message  # left at its ones by a load that reported success
    repro = result.repro.replace("\nimport timm\n", "\nimport timm\n" + fault, 1)
    assert repro != result.repro
    done = subprocess.run([sys.executable, "-c", repro], capture_output=True, text=True, timeout=600)
    assert "timm-compat: reproduced silent-reinit" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
