"""The pretrained_file path: timm's real pretrained loader under overrides, and faults put back into it."""

import torch
from timm.models import _builder, swin_transformer, vision_transformer

from compat_tests.core.scenario import Override, Scenario
from compat_tests.paths import all_paths
from compat_tests.paths.support.overrides import applicable_overrides, skipped_overrides
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache


def _run(model: str, override: Override):
    return run_scenario(Scenario(model, "pretrained_file", override), SourceCache())


def test_override_axis_applies_only_where_the_architecture_accepts_it():
    vit = {o.name for o in applicable_overrides("test_vit2")}
    assert {"patch_size_8", "patch_size_32", "in_chans_1", "num_classes_0", "dynamic_img_size"} <= vit
    skipped = skipped_overrides("resnet18")
    assert "img_size" in " ".join(skipped) and all(skipped.values())  # each with its reason
    assert not any(o.name.startswith("img_size") for o in applicable_overrides("resnet18"))


def test_every_candidate_is_a_cell_and_an_inapplicable_one_is_skipped_with_its_reason():
    path = all_paths()["pretrained_file"]
    names = {o.name for o in path.overrides("resnet18")}
    assert {"base", "in_chans_1", "img_size_128", "dynamic_img_size"} <= names  # listed without probing
    img = next(o for o in path.overrides("resnet18") if o.name == "img_size_128")
    assert path.applies("resnet18", img) == skipped_overrides("resnet18")["img_size_128"]
    result = _run("resnet18", img)
    assert result.status == "skipped" and result.message.startswith("not applicable: ")
    assert "position embedding" in result.message


def test_patch_and_channel_overrides_pass_and_shrink_the_output_as_asked():
    for override in (Override.of("patch_size_8", patch_size=8), Override.of("in_chans_1", in_chans=1),
                     Override.of("num_classes_0", num_classes=0)):
        result = _run("test_vit2", override)
        assert result.status == "passed", (override, result.message)
        assert result.evidence["output"]["ok"]


def overlay_keeps_custom_load(monkeypatch):
    """timm up to 1.0.30: an overlay naming a file kept its tag's custom_load (1.0.31 resets it), so a model whose
    weights are in their original .npz format got the file read by its own .npz reader."""
    import dataclasses

    real = _builder.resolve_pretrained_cfg

    def resolve_pretrained_cfg(variant, pretrained_cfg=None, pretrained_cfg_overlay=None):
        cfg = real(variant, pretrained_cfg, pretrained_cfg_overlay)
        if pretrained_cfg_overlay and "custom_load" not in pretrained_cfg_overlay:
            cfg = dataclasses.replace(cfg, custom_load=real(variant, pretrained_cfg).custom_load)
        return cfg

    monkeypatch.setattr(_builder, "resolve_pretrained_cfg", resolve_pretrained_cfg)


def test_a_file_handed_to_the_models_npz_reader_is_named_and_custom_load_false_gets_past_it(monkeypatch):
    """vit_tiny_patch16_224's tag holds big_vision .npz weights (custom_load): the file-given-to-npz-loader of
    timm <= 1.0.30, on real and on meta cells, from the record alone too; the user's fix loads it in full."""
    from compat_tests.signatures.catalog import classify_record

    assert _builder.get_pretrained_cfg("vit_tiny_patch16_224").custom_load
    overlay_keeps_custom_load(monkeypatch)
    for meta in (False, True):
        result = run_scenario(Scenario("vit_tiny_patch16_224", "pretrained_file", meta=meta), SourceCache())
        assert (result.status, result.signature) == ("failed", "file-given-to-npz-loader"), result.message
        assert "raised in timm/models/vision_transformer.py:" in result.message
        assert classify_record(result) == (result.signature, result.message)
        fixed = run_scenario(Scenario("vit_tiny_patch16_224", "pretrained_file", meta=meta), SourceCache(),
                             workarounds=["overlay-file-without-custom-load"])
        assert fixed.status == "passed", fixed.message
    # A model whose tag is timm's own weights is untouched by the fault.
    assert _run("test_vit2", Override.of("base")).status == "passed"


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


def test_input_conv_left_unadapted_is_named(monkeypatch):
    # load_pretrained's adapt_input_conv made a no-op: the 3-channel kernel reaches an in_chans=1 model.
    monkeypatch.setattr(_builder, "adapt_input_conv", lambda in_chans, conv_weight, **kwargs: conv_weight)
    result = _run("test_vit2", Override.of("in_chans_1", in_chans=1))
    assert result.status == "failed" and result.signature == "input-conv-not-adapted", result.message
    assert "patch_embed.proj.weight" in result.message


def test_classifier_kept_across_a_class_count_change_is_named(monkeypatch):
    # load_pretrained's classifier reset made a no-op: it is told the class count did not change, so the
    # source head is never dropped (the reset is inline in the real function, keyed on num_classes).
    real = _builder.load_pretrained

    def load_pretrained(model, pretrained_cfg=None, num_classes=1000, **kwargs):
        cfg = pretrained_cfg or model.pretrained_cfg
        return real(model, pretrained_cfg=pretrained_cfg, num_classes=cfg.get("num_classes", num_classes), **kwargs)

    monkeypatch.setattr(_builder, "load_pretrained", load_pretrained)
    result = _run("test_vit2", Override.of("num_classes_10", num_classes=10))
    assert result.status == "failed" and result.signature == "classifier-not-reset", result.message
    assert "head.weight" in result.message


def test_load_checkpoint_with_the_models_filter_is_judged_like_pretrained_file(monkeypatch):
    scenario = Scenario("test_vit2", "load_checkpoint", Override.of("patch_size_8", patch_size=8))
    assert run_scenario(scenario, SourceCache()).status == "passed"
    monkeypatch.setattr(vision_transformer, "resample_patch_embed", lambda v, *a, **k: v)
    result = run_scenario(scenario, SourceCache())
    assert result.status == "failed" and result.signature == "patch-resample-skipped", result.message
    no_filter = run_scenario(Scenario("resnet18", "load_checkpoint"), SourceCache())
    assert no_filter.status == "skipped" and "checkpoint_filter_fn" in no_filter.message


def test_window_tables_resized_by_the_filter_pass_and_a_skipped_resize_is_named(monkeypatch):
    # patch_size=8 shrinks Swin's last stage below its 7x7 window: the filter must resize that table.
    scenario = Scenario("swin_tiny_patch4_window7_224", "load_checkpoint", Override.of("patch_size_8", patch_size=8))
    result = run_scenario(scenario, SourceCache())
    assert result.status == "passed", result.message
    assert "rel_pos" in result.evidence["extra"]["adapted"]["layers.3.blocks.0.attn.relative_position_bias_table"]
    # The resize put back to fresh zeros of the right shape: loads without error, but is not the source's table.
    monkeypatch.setattr(swin_transformer, "resize_rel_pos_bias_table",
                        lambda v, new_window_size, new_bias_shape, **k: torch.zeros(new_bias_shape))
    result = run_scenario(scenario, SourceCache())
    assert result.status == "failed" and result.signature == "rel-pos-table-resize-skipped", result.message
    assert "layers.3.blocks.0.attn.relative_position_bias_table" in result.message


def test_an_override_whose_normal_build_cannot_run_forward_is_not_applicable(monkeypatch):
    # timm 0.9.16's PatchMerging, put back: it asserted an even grid where today's pads. A patch_size=8 Swin
    # then cannot run at all, loaded or not, so the cell is the architecture's refusal, not a load failure.
    real = swin_transformer.PatchMerging.forward

    def merging_without_padding(self, x):
        assert x.shape[1] % 2 == 0, f"x height ({x.shape[1]}) is not even."
        return real(self, x)

    monkeypatch.setattr(swin_transformer.PatchMerging, "forward", merging_without_padding)
    scenario = Scenario("swin_tiny_patch4_window7_224", "load_checkpoint", Override.of("patch_size_8", patch_size=8))
    result = run_scenario(scenario, SourceCache())
    assert result.status == "skipped", result.message
    assert result.message == ("not applicable: a normal build with {'patch_size': 8} cannot run forward here: "
                              "AssertionError: x height (7) is not even.")


def test_an_override_refused_by_a_bare_assert_is_skipped_with_its_type():
    # timm's HybridEmbed refuses a patch larger than its feature map with `assert ...` and no message.
    patch = Override.of("patch_size_16", patch_size=16)
    reason = all_paths()["pretrained_file"].applies("vit_tiny_r_s16_p8_224", patch)
    assert reason == "AssertionError: (no message)"


def test_a_space_to_depth_stem_is_adapted_to_one_channel_and_kept_at_init_for_four():
    """TResNet's stem conv takes 16 pixels of each channel (48 inputs). adapt_input_conv sums each group for
    in_chans=1 and raises NotImplementedError for 4, which load_pretrained answers by keeping the layer's init with a
    warning: both are what timm documents, so both pass (the oracle once called the helper with 16 channels and failed
    itself)."""
    one = _run("tresnet_m", Override.of("in_chans_1", in_chans=1))
    assert one.status == "passed", one.message
    assert one.evidence["extra"]["adapted"] == {"body.conv1.conv.weight": "in_chans"}
    four = _run("tresnet_m", Override.of("in_chans_4", in_chans=4))
    assert four.status == "passed", four.message
    assert four.evidence["extra"]["fresh"] == ["body.conv1.conv.weight"]


def test_a_pos_embed_without_a_patch_grid_is_judged_as_it_stands_and_a_resize_of_it_is_refused():
    """Hiera keeps a (1, tokens, dim) pos_embed beside a PatchEmbed with no grid_size: a load that keeps its shape
    is judged like any other (it was a harness error), and the oracle refuses to guess a resize it cannot compute."""
    import pytest
    import timm

    from compat_tests.core.scenario import BASE
    from compat_tests.judge.expected import adapted_state

    for override in (BASE, Override.of("in_chans_4", in_chans=4)):
        result = _run("hiera_tiny_224", override)
        assert result.status == "passed", (override, result.signature, result.message)
    with torch.device("meta"):
        source, reference = timm.create_model("hiera_tiny_224"), timm.create_model("hiera_tiny_224", img_size=147)
    with pytest.raises(NotImplementedError, match="no patch_embed.grid_size to resample it by"):
        adapted_state(source.state_dict(), source, reference)


def test_resampling_is_held_to_the_settings_timm_binds_to_the_filter_and_a_filter_ignoring_them_is_named(
        monkeypatch):
    """timm binds RADIO's filter to bilinear resampling without antialias (align_corners for v3-B): a load that
    follows them passes (it failed as patch-resample-skipped against the helpers' bicubic defaults), and a filter
    that drops what it was bound to and resamples at the defaults is named."""
    from compat_tests.judge.expected import resample_settings

    name, override = "vit_base_patch16_radio_v3", Override.of("patch_size_32", patch_size=32)
    assert resample_settings(name, {}) == {"interpolation": "bilinear", "antialias": False, "align_corners": True}
    assert resample_settings("vit_small_patch16_224", {}) == {}
    assert _run(name, override).status == "passed"
    real = vision_transformer.checkpoint_filter_fn

    def at_defaults(state_dict, model, *args, interpolation=None, antialias=None, align_corners=None, **kwargs):
        return real(state_dict, model, *args, **kwargs)

    monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn", at_defaults)
    result = _run(name, override)
    assert (result.status, result.signature) == ("failed", "patch-resample-skipped"), result.message


def test_the_bound_settings_are_read_under_timm_0_9_16_where_a_meta_build_of_flexivit_fails():
    """timm 0.9 reads drop-path rates with `.item()`, so a meta build of FlexiViT raises there: settings read from
    such a build fell back to the helpers' defaults, and three of flexivit_small's resize cells failed falsely under
    compat-oldest. They are read where the filter is handed to `build_model_with_cfg`, before anything is built;
    the function runs from its own source, as a repro script embeds it, under the real timm 0.9.16."""
    import inspect
    import os
    import subprocess
    import sys

    from compat_tests.judge.expected import resample_settings
    from compat_tests.paths.support import snapshots

    from .test_snapshots import _generator

    target = _generator()._legacy_generator().producer_env("timm0.9.16", snapshots.producer_packages("timm0.9.16"))
    code = (inspect.getsource(resample_settings) + "\nimport timm\n"
            "print(timm.__version__, sorted(resample_settings('flexivit_small', {}).items()))\n")
    env = dict(os.environ, PYTHONPATH=str(target), HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0.9.16 [('antialias', False), ('interpolation', 'bilinear')]", out.stdout
