"""Half-precision checkpoints: the source saved in bfloat16 and float16 (as many published checkpoints are),
loaded through timm's own loaders and through transformers' TimmWrapper. A correct load gives a model that
runs on an ordinary float32 input and holds exactly the upcast source (`source.to(dtype).float()`)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..core.evidence import Evidence
from ..core.scenario import Override
from ..core.versions import missing
from ..judge.check import Check
from ..judge.oracle import diff_state, forward_into, outputs_against, state_evidence
from ..source.models import BUILD_SOURCE, SourceModel
from .base import LoadingPath
from .hf_auto import TIMM_WRAPPER, load_timm_wrapper
from .timm_hub import LOCAL_DIR, load_local_dir

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
        loaded = {"model": timm.create_model(spec["name"], pretrained=True, pretrained_cfg_overlay=dict(file=file))}
    else:
        timm.models.save_for_hf(half, workdir)
        if loader == "timm_hub":
            loaded = load_local_dir(workdir)
        else:
            loaded = load_timm_wrapper(workdir, getattr(model, "num_classes", 1))
    loaded["model"].eval()
    return {**loaded, "checkpoint_dtype": spec["kwargs"]["checkpoint_dtype"]}


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
    evidence = state_evidence(report, loaded, extra={"checkpoint_dtype": str(dtype)})
    reference_model = copy.deepcopy(source.model)
    reference_model.load_state_dict(expected)
    x = source.input()  # float32, as a user feeds it: a half-precision model may refuse it
    want = forward_into(evidence, reference_model, x)
    return evidence if want is None else outputs_against(evidence, reference_model, want, loaded, x)


# The repro's expectation is the upcast source, not the source itself.
REPRO_PREPARE = BUILD_SOURCE + '''
loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
expected_state = upcast_state(source, getattr(torch, spec["kwargs"]["checkpoint_dtype"]))
source.load_state_dict(expected_state)
x = make_input({input_size!r}, spec["seed"], {batch})  # float32
with torch.no_grad():
    reference = source(x)
'''


# Judged against the upcast source, reproduced likewise.
UPCAST = Check(judge_checkpoint_dtype, (upcast_state,), REPRO_PREPARE)

PATH = LoadingPath(
    name="checkpoint_dtype",
    summary="the source saved in bfloat16/float16 -> timm pretrained file / timm hub folder / transformers Auto",
    roundtrip=checkpoint_dtype_roundtrip,
    helpers=(load_timm_wrapper, load_local_dir),
    overrides=dtype_overrides,
    applies=dtype_applies,
    # The source is built plain; the override names how it is saved and loaded, not how it is built.
    source_kwargs=lambda override: {},
    check=UPCAST,
)
