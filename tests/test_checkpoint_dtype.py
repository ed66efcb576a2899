"""Half-precision checkpoints through the real loaders, judged against what each release documents: timm's
loaders upcast (a loader keeping the checkpoint's dtype, as transformers 5's dtype="auto" does, put into timm's
real load_pretrained, is named), and TimmWrapper does what the installed transformers documents (the opposite,
put into its real from_pretrained, is named too)."""

import pytest
import torch
from timm.models import _builder

from compat_tests.core.scenario import Override, Scenario
from compat_tests.paths import all_paths
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache


def cell(name: str) -> Override:
    """The path's own cell, with what the installed releases document for it (judge/expectations.py)."""
    return next(o for o in all_paths()["checkpoint_dtype"].overrides("test_vit2") if o.name == name)


BF16_FILE = cell("bf16_pretrained_file")


def test_cells_cover_both_dtypes_and_every_loader():
    names = {o.name for o in all_paths()["checkpoint_dtype"].overrides("resnet18")}
    assert {"bf16_pretrained_file", "fp16_pretrained_file", "bf16_timm_hub", "fp16_hf_auto"} <= names


def test_a_bf16_checkpoint_loads_as_the_upcast_source_and_runs_float32():
    result = run_scenario(Scenario("test_vit2", "checkpoint_dtype", BF16_FILE), SourceCache())
    assert result.status == "passed", result.message
    assert result.evidence["output"]["ok"] and not result.evidence["dtype_mismatches"]


def test_a_loader_keeping_the_checkpoint_dtype_is_named(monkeypatch):
    real = _builder.load_pretrained

    def load_pretrained(model, *args, **kwargs):
        real(model, *args, **kwargs)
        model.to(torch.bfloat16)  # as a dtype="auto" loader leaves it

    monkeypatch.setattr(_builder, "load_pretrained", load_pretrained)
    result = run_scenario(Scenario("test_vit2", "checkpoint_dtype", BF16_FILE), SourceCache())
    assert result.status == "failed" and result.signature == "dtype-changed", result.message
    assert "torch.float32" in result.message and "torch.bfloat16" in result.message


def test_timm_wrapper_gives_the_dtype_its_release_documents_and_the_opposite_is_named(monkeypatch):
    import transformers

    from compat_tests.judge.expectations import expected

    override = cell("bf16_hf_auto")
    keeps = expected("hf_auto.dtype").value == "checkpoint"
    scenario = Scenario("test_vit2", "checkpoint_dtype", override)
    # The known kwarg-conflict (timm 1.0.31 + transformers >= 4.53) is got past the way users do.
    workaround = "drop-num-classes-from-model-args"
    result = run_scenario(scenario, SourceCache(), workarounds=[workaround])
    assert result.status == "passed", result.message
    real = transformers.AutoModelForImageClassification.from_pretrained.__func__

    def departing(cls, *args, **kwargs):
        model, info = real(cls, *args, **kwargs)
        return (model.float() if keeps else model.to(torch.bfloat16)), info

    monkeypatch.setattr(transformers.AutoModelForImageClassification, "from_pretrained", classmethod(departing))
    result = run_scenario(scenario, SourceCache(), workarounds=[workaround])
    assert result.status == "failed" and result.signature == "dtype-changed", result.message


@pytest.mark.parametrize("model, rounded", [("gemma4_vit_167m", "output-mismatch"),
                                             ("vit_dwee_patch16_reg1_gap_256", "dtype-changed")])
def test_a_model_kept_in_half_precision_is_judged_against_a_build_in_that_dtype_not_a_cast(monkeypatch, model,
                                                                                         rounded):
    """transformers 5 builds a half-precision checkpoint's model with that dtype as torch's default, where timm keeps
    Gemma4's rotary `inv_freq` (a buffer it computes) and vit_dwee's attention lambdas (parameters) in float32; a
    reference cast with `.to(float16)` rounded them and called these exact loads an output-mismatch and a
    dtype-changed. A loader that does round them is still named."""
    import transformers

    from compat_tests.judge.expectations import expected

    if expected("hf_auto.dtype").value != "checkpoint":
        pytest.skip("transformers 4.x loads a half-precision checkpoint as float32: no model keeps its dtype")
    scenario = Scenario(model, "checkpoint_dtype", next(o for o in all_paths()["checkpoint_dtype"].overrides(model)
                                                        if o.name == "fp16_hf_auto"))
    workaround = "drop-num-classes-from-model-args"  # the known kwarg-conflict, got past as users do
    cache = SourceCache()
    result = run_scenario(scenario, cache, workarounds=[workaround])
    assert result.status == "passed", result.message
    assert result.evidence["output"]["max_error"] == 0.0 and "reference" not in result.evidence["extra"]
    auto = transformers.AutoModel if model.startswith("gemma4") else transformers.AutoModelForImageClassification
    real = auto.from_pretrained.__func__

    def rounding(cls, *args, **kwargs):
        loaded, info = real(cls, *args, **kwargs)
        return loaded.to(loaded.dtype), info  # every floating tensor cast to the checkpoint's dtype

    monkeypatch.setattr(auto, "from_pretrained", classmethod(rounding))
    result = run_scenario(scenario, cache, workarounds=[workaround])
    assert result.status == "failed" and result.signature == rounded, result.message
    if rounded == "output-mismatch":
        # The first layer that differs is the first attention, where the rounded frequencies rotate q and k.
        assert result.evidence["output"]["first_divergence"]["module"].startswith("encoder.blocks.0.attn."), \
            result.evidence["output"]


def test_a_model_this_cpu_cannot_build_in_half_precision_is_not_called_a_dtype_change():
    """csatv2's constructor runs an FFT in the default dtype, which has no float16 kernel on the CPU. The stand-in
    reference, the source cast to the dtypes a meta build in float16 gives, keeps its DCT weights in float32 as the
    loaded model does (the cast source had called that `dtype-changed`); a model mixing the two then cannot run on
    this CPU, which is not applicable here rather than anyone's failure."""
    from compat_tests.judge.expectations import expected

    scenario = Scenario("csatv2", "checkpoint_dtype", next(o for o in all_paths()["checkpoint_dtype"].overrides(
        "csatv2") if o.name == "fp16_hf_auto"))
    result = run_scenario(scenario, SourceCache(), workarounds=["drop-num-classes-from-model-args"])
    if expected("hf_auto.dtype").value != "checkpoint":
        assert result.status == "passed", result.message
        return
    assert result.status == "skipped", result.message
    assert "a normal build in torch.float16 cannot run forward here" in result.message
