"""Half-precision checkpoints: the source saved in bfloat16 and float16 (as many published checkpoints are),
loaded through timm's own loaders and through transformers' TimmWrapper. A correct load gives a model that
runs on an ordinary float32 input and holds exactly the upcast source (`source.to(dtype).float()`)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from .. import repro
from ..evidence import Evidence, from_exception
from ..oracle import OUTPUT_RTOL, compare_outputs, diff_state, explain_output
from ..scenario import Override
from ..source import SourceModel
from ..versions import missing
from .base import LoadingPath
from .hf_auto import TIMM_WRAPPER
from .timm_hub import LOCAL_DIR

ORDER = 88
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
LOADERS = ("pretrained_file", "timm_hub", "hf_auto")


def dtype_overrides(name: str) -> list[Override]:
    return [Override.of(f"{short}_{loader}", checkpoint_dtype=dtype, loader=loader)
            for short, dtype in DTYPES.items() for loader in LOADERS]


def dtype_applies(name: str, override: Override) -> str | None:
    """Each loader's own release floor; the other loaders' cells still run."""
    loader = override.as_dict().get("loader")
    if loader == "timm_hub":
        return missing(*LOCAL_DIR)
    if loader == "hf_auto":
        return missing(*TIMM_WRAPPER)
    return None


def checkpoint_dtype_roundtrip(model, workdir, spec):
    import copy
    import os

    import timm
    import torch

    dtype = getattr(torch, spec["kwargs"]["checkpoint_dtype"])
    loader = spec["kwargs"]["loader"]
    half = copy.deepcopy(model).to(dtype)  # what a published half-precision checkpoint holds
    if loader == "pretrained_file":
        file = os.path.join(workdir, "checkpoint.pth")
        torch.save(half.state_dict(), file)
        loaded = timm.create_model(spec["name"], pretrained=True, pretrained_cfg_overlay=dict(file=file))
        return {"model": loaded.eval(), "checkpoint_dtype": spec["kwargs"]["checkpoint_dtype"]}
    timm.models.save_for_hf(half, workdir)
    if loader == "timm_hub":
        loaded = timm.create_model("local-dir:" + workdir, pretrained=True)
        return {"model": loaded.eval(), "checkpoint_dtype": spec["kwargs"]["checkpoint_dtype"]}
    import transformers

    auto, head = ((transformers.AutoModelForImageClassification, "logits") if getattr(model, "num_classes", 1)
                  else (transformers.AutoModel, "pooler_output"))
    wrapper, info = auto.from_pretrained(workdir, output_loading_info=True)  # the release's default dtype
    wrapper.eval()
    return {"model": wrapper.timm_model, "checkpoint_dtype": spec["kwargs"]["checkpoint_dtype"],
            "forward": lambda x: getattr(wrapper(pixel_values=x), head),
            "missing_keys": [k.removeprefix("timm_model.") for k in info.get("missing_keys", [])],
            "unexpected_keys": [k.removeprefix("timm_model.") for k in info.get("unexpected_keys", [])]}


def upcast_state(model, dtype):
    """The source's state as a half-precision checkpoint holds it, back in the source's dtypes (standalone)."""
    return {k: (v.to(dtype).to(v.dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def judge_checkpoint_dtype(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Every tensor equal (and of the dtype) of the upcast source; a float32 input's output equal to the
    upcast source's."""
    module: torch.nn.Module = loaded["model"]
    dtype = getattr(torch, loaded["checkpoint_dtype"])
    expected = upcast_state(source.model, dtype)
    report = diff_state(expected, module.state_dict())
    evidence = Evidence(
        missing_keys=sorted(set(report["missing"]) | set(loaded.get("missing_keys") or [])),
        unexpected_keys=sorted(set(report["unexpected"]) | set(loaded.get("unexpected_keys") or [])),
        shape_mismatches=report["shape"], dtype_mismatches=report["dtype"], value_mismatches=report["values"],
        extra={"checkpoint_dtype": str(dtype)},
    )
    reference_model = copy.deepcopy(source.model)
    reference_model.load_state_dict(expected)
    x = source.input()  # float32, as a user feeds it
    module.eval()
    try:
        with torch.no_grad():
            want = reference_model(x)
            got = (loaded.get("forward") or module)(x)
    except Exception as error:  # e.g. a half-precision model refusing the float32 input
        evidence.exception = from_exception(error).exception
        return evidence
    evidence.output = compare_outputs(want, got, OUTPUT_RTOL)
    explain_output(evidence, reference_model, module, x, loaded.get("forward"))
    return evidence


# The repro's expectation is the upcast source, not the source itself.
REPRO_PREPARE = repro.BUILD_SOURCE + '''
loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
expected_state = upcast_state(source, getattr(torch, spec["kwargs"]["checkpoint_dtype"]))
source.load_state_dict(expected_state)
x = make_input({input_size!r}, spec["seed"], {batch})  # float32
with torch.no_grad():
    reference = source(x)
'''


PATH = LoadingPath(
    name="checkpoint_dtype",
    summary="the source saved in bfloat16/float16 -> timm pretrained file / timm hub folder / transformers Auto",
    roundtrip=checkpoint_dtype_roundtrip,
    helpers=(upcast_state,),
    overrides=dtype_overrides,
    applies=dtype_applies,
    # The source is built plain; the override names how it is saved and loaded, not how it is built.
    source_kwargs=lambda override: {},
    judge=judge_checkpoint_dtype,
    repro_prepare=REPRO_PREPARE,
)
