"""Half-precision checkpoints: the source saved in bfloat16 and float16 (as many published checkpoints are),
loaded through timm's own loaders and through transformers' TimmWrapper. A correct load is what the installed
release documents (judge/expectations.py): timm's loaders and transformers 4.x give a float32 model holding
exactly the upcast source (`source.to(dtype).float()`); transformers 5.x keeps the checkpoint's dtype
(`dtype="auto"`): it builds the model with that dtype as torch's default and its TimmWrapper casts the float32
input to it. Either way the model runs on an ordinary float32 input.

The reference for a model kept in the checkpoint's dtype is a normal build under that default dtype holding the
checkpoint's values, not the source cast with `.to(dtype)`: a cast rounds every tensor, while a build keeps those
its code makes in float32 in float32. Gemma4's rotary `inv_freq` rounded to float16 moves its output by 4%, and
vit_dwee's float32 lambdas read as `dtype-changed`: both were the cast reference's false positives. Where the CPU
cannot build the model in that dtype (csatv2's FFT has no float16 kernel), the source cast to the dtypes a meta
build gives stands in, and the evidence says so."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..core.evidence import Evidence, NotApplicable, said
from ..core.scenario import Override
from ..core.versions import missing
from ..judge.check import Check
from ..judge.expectations import UndocumentedRelease, expected
from ..judge.oracle import diff_state, outputs_against, state_evidence
from ..source.models import BUILD_SOURCE, SourceModel
from ..source.quick_init import QuickInit
from .base import LoadingPath
from .hf_auto import TIMM_WRAPPER, load_timm_wrapper
from .timm_hub import LOCAL_DIR, load_local_dir

ORDER = 88
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
LOADERS = ("pretrained_file", "timm_hub", "hf_auto")


def _documented(loader: str) -> dict[str, str]:
    """What the installed release of `loader` documents doing with a half-precision checkpoint and a float32
    input (judge/expectations.py); {} when the table has no row for it."""
    try:
        return {"loaded_dtype": expected(f"{loader}.dtype").value, "input_dtype": expected(f"{loader}.input").value}
    except UndocumentedRelease:
        return {}


def dtype_overrides(name: str) -> list[Override]:
    # The expectation rides in the cell's kwargs: recorded with its result, read by its judge and its repro.
    return [Override.of(f"{short}_{loader}", checkpoint_dtype=dtype, loader=loader, **_documented(loader))
            for short, dtype in DTYPES.items() for loader in LOADERS]


def dtype_applies(name: str, override: Override) -> str | None:
    """Each loader's own release floor; the other loaders' cells still run."""
    kwargs = override.as_dict()
    loader = kwargs.get("loader")
    if loader == "timm_hub" and (reason := missing(*LOCAL_DIR)):
        return reason
    if loader == "hf_auto" and (reason := missing(*TIMM_WRAPPER)):
        return reason
    if "loaded_dtype" not in kwargs:
        return f"judge/expectations.py says nothing of what {loader} documents for a half-precision checkpoint here"
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
        from timm.models._hub import save_for_hf  # timm.models exports it only from 1.0.16

        save_for_hf(half, workdir)
        if loader == "timm_hub":
            loaded = load_local_dir(workdir)
        else:
            loaded = load_timm_wrapper(workdir, getattr(model, "num_classes", 1))
    loaded["model"].eval()
    return {**loaded, **spec["kwargs"]}


def half_state(model, dtype, keeps_dtype):
    """The source's state as a half-precision checkpoint holds it: in that dtype where the loader documents
    keeping the checkpoint's dtype, else back in the source's dtypes (standalone)."""
    def held(v):
        return v.to(dtype) if keeps_dtype else v.to(dtype).to(v.dtype)

    return {k: (held(v) if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def built_in(name, kwargs, dtype, device="cpu"):
    """A normal build of `name` with `dtype` as torch's default dtype, as transformers 5's from_pretrained builds a
    checkpoint's model (`local_torch_dtype`): its parameters in `dtype`, and the tensors its code makes in another
    dtype there (rotary frequencies in float32) as it makes them; on meta, their dtypes alone (standalone)."""
    import timm
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return timm.create_model(name, pretrained=False, **kwargs).eval()
    finally:
        torch.set_default_dtype(previous)


def cast_like_build(model, name, kwargs, dtype):
    """A copy of `model` with each floating tensor cast straight to the dtype a build in `dtype` gives it, read off
    that build on the meta device, where transformers makes it (standalone): the stand-in for `built_in` where the
    CPU has no kernel for the constructor's own computing in `dtype`."""
    import copy

    shape = built_in(name, kwargs, dtype, "meta")
    dtypes = {k: t.dtype for k, t in [*shape.named_parameters(), *shape.named_buffers()]}
    model = copy.deepcopy(model)
    for key, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(dtypes.get(key, dtype))
    return model.eval()


def held_by(state, model):
    """`state` in the dtype `model` holds each of its tensors in (standalone): a checkpoint's values as a build that
    keeps some tensors in float32 (vit_dwee's differential-attention lambdas) holds them."""
    own = model.state_dict()
    return {k: v.to(own[k].dtype) if v.is_floating_point() and k in own and own[k].is_floating_point() else v
            for k, v in state.items()}


def judge_checkpoint_dtype(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Every tensor equal to (and of the dtype of) the checkpoint as the loader documents loading it (upcast to
    float32, or kept in its own dtype as a build in that dtype keeps it), and the output of an ordinary float32 input
    equal to that of a normal build holding those tensors, fed the input as the loader documents feeding it."""
    module: torch.nn.Module = loaded["model"]
    dtype = getattr(torch, loaded["checkpoint_dtype"])
    keeps = loaded["loaded_dtype"] == "checkpoint"
    expected_state = half_state(source.model, dtype, keeps)
    extra = {"checkpoint_dtype": str(dtype), "loaded_dtype": str(dtype if keeps else "as saved")}
    if keeps:
        try:
            with QuickInit():  # every value it draws is overwritten by the checkpoint's below
                reference_model = built_in(source.name, source.kwargs, dtype)
        except Exception as error:  # a constructor computing in `dtype` with no CPU kernel (csatv2's FFT in float16)
            reference_model = cast_like_build(source.model, source.name, source.kwargs, dtype)
            extra["reference"] = (f"the source cast to the dtypes a meta build in {dtype} gives: a build in {dtype} "
                                  f"raised here: {said(error)}")
        expected_state = held_by(expected_state, reference_model)
    else:
        reference_model = copy.deepcopy(source.model)
    report = diff_state(expected_state, module.state_dict())
    evidence = state_evidence(report, loaded, extra=extra)
    reference_model.load_state_dict(expected_state)
    x = source.input()  # float32, as a user feeds it
    as_run = x.to(dtype) if keeps and loaded["input_dtype"] == "model dtype" else x
    try:
        with torch.no_grad():
            want = reference_model(as_run)
    except Exception as error:  # e.g. an op with no CPU kernel in this half dtype: no loader is at fault
        raise NotApplicable(f"a normal build in {dtype} cannot run forward here: {said(error)}") from error
    if not torch.isfinite(want).all():  # overflow in the half dtype: equal NaNs would prove nothing
        raise NotApplicable(f"a normal build in {dtype} computes non-finite outputs on this input")
    return outputs_against(evidence, reference_model, want, loaded, x, as_run)


# The repro's expectation is the checkpoint as the loader documents loading it, not the source itself.
REPRO_PREPARE = BUILD_SOURCE + '''
loaded = {roundtrip}(source, tempfile.mkdtemp(dir=WORKDIR), spec)  # an exception here is the failure
dtype = getattr(torch, spec["kwargs"]["checkpoint_dtype"])
keeps = spec["kwargs"]["loaded_dtype"] == "checkpoint"  # what the installed release documents
expected_state = half_state(source, dtype, keeps)
if keeps:  # a normal build under the checkpoint's dtype, as the loader documents building it
    try:
        source = built_in(spec["name"], spec["source_kwargs"], dtype)
    except Exception as error:  # no CPU kernel for its constructor in that dtype: the source cast stands in
        print("reference: the source cast to the dtypes a meta build gives, as a build raised here:", repr(error))
        source = cast_like_build(source, spec["name"], spec["source_kwargs"], dtype)
    expected_state = held_by(expected_state, source)
source.load_state_dict(expected_state)
expected_model, expected_buffers = source, None  # its layers are the reference; its judge compares no buffers
x = make_input({input_size!r}, spec["seed"], {batch})  # float32, as a user feeds it
with torch.no_grad():
    reference = source(x.to(dtype) if keeps and spec["kwargs"]["input_dtype"] == "model dtype" else x)
'''


# Judged against the checkpoint as the installed release documents loading it, reproduced likewise.
HALF = Check(judge_checkpoint_dtype, (half_state, built_in, cast_like_build, held_by), REPRO_PREPARE)

PATH = LoadingPath(
    name="checkpoint_dtype",
    summary="the source saved in bfloat16/float16 -> timm pretrained file / timm hub folder / transformers Auto",
    roundtrip=checkpoint_dtype_roundtrip,
    helpers=(load_timm_wrapper, load_local_dir),
    overrides=dtype_overrides,
    applies=dtype_applies,
    # The source is built plain; the override names how it is saved and loaded, not how it is built.
    source_kwargs=lambda override: {},
    check=HALF,
    loads_into_build=True,
)
