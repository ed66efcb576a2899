"""Half-precision checkpoints through timm's real loaders, judged against the upcast source; a loader that
keeps the checkpoint's dtype (what transformers' dtype="auto" does) put into timm's real load_pretrained."""

import torch
from timm.models import _builder

from compat_tests.core.scenario import Override, Scenario
from compat_tests.paths import all_paths
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache

BF16_FILE = Override.of("bf16_pretrained_file", checkpoint_dtype="bfloat16", loader="pretrained_file")


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
