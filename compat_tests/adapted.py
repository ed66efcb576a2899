"""Adapted loads: the override axis (what a user may ask of a pretrained checkpoint), the judge that
holds a load to `expected.adapted_state`, and the signatures for what such loads get wrong."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from . import repro
from .evidence import Evidence
from .expected import adapted_state, input_size_for
from .meta import build_on_meta, meta_model
from .oracle import OUTPUT_RTOL, compare_outputs, diff_state, explain_output, nonpersistent_buffers
from .paths.base import NotApplicable
from .scenario import BASE, Override
from .signatures import Signature
from .source import SourceModel, make_input


def _said(e: Exception) -> str:
    """One line naming what timm raised; a bare `assert` in timm has no message at all."""
    return f"{type(e).__name__}: {(str(e).splitlines() or ['(no message)'])[0][:160]}"


@cache
def _probe(name: str, kwargs: tuple[tuple[str, Any], ...]) -> str | None:
    """Why the architecture rejects these kwargs (built by `build_on_meta`: nothing allocated where the
    constructor allows it), or None."""
    try:
        build_on_meta(name, **dict(kwargs))
    except Exception as e:  # whatever timm raises is the architecture saying no
        return _said(e)
    return None


@cache
def _facts(name: str) -> dict[str, Any]:
    model = meta_model(name)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    patch = getattr(getattr(getattr(model, "patch_embed", None), "proj", None), "kernel_size", None)
    return {
        "num_classes": getattr(model, "num_classes", None),
        "classifier": cfg.get("classifier"),
        "first_conv": cfg.get("first_conv"),
        "side": int((cfg.get("input_size") or (3, 224, 224))[-1]),
        "patch": int(patch[0]) if patch and patch[0] == patch[1] else None,
        "pos_embed": getattr(model, "pos_embed", None) is not None,
    }


def override_axis(name: str) -> list[tuple[Override, str | None]]:
    """Every override of the axis for a model, with the reason it cannot apply that the model's facts
    alone give (no head, no position embedding...), or None. One meta-device build per model, no probing:
    this runs at collection for every selected model."""
    f = _facts(name)
    step = f["patch"] or 32
    small, large = max(step, f["side"] * 2 // 3 // step * step), f["side"] * 4 // 3 // step * step
    no_head = None if f["classifier"] else "the model has no classifier in its pretrained config"
    other = 10 if f["num_classes"] != 10 else 7
    no_conv = None if f["first_conv"] else "the pretrained config names no first_conv to adapt"
    no_pos = None if f["pos_embed"] else "the model has no absolute position embedding to resample"
    cells: list[tuple[Override, str | None]] = [
        (Override.of(f"num_classes_{other}", num_classes=other), no_head),
        (Override.of("num_classes_0", num_classes=0),
         no_head or ("the model already has num_classes=0" if f["num_classes"] == 0 else None)),
        (Override.of("in_chans_1", in_chans=1), no_conv),
        (Override.of("in_chans_4", in_chans=4), no_conv),
        (Override.of(f"img_size_{small}", img_size=small), no_pos),
        (Override.of(f"img_size_{large}", img_size=large), no_pos),
    ]
    # A 1x1 "patch" (hybrid ViTs embed backbone features) has no half to resample to.
    for patch in ((f["patch"] // 2, f["patch"] * 2) if f["patch"] and f["patch"] > 1 else ()):
        reason = None if f["side"] % patch == 0 else f"image side {f['side']} is not a multiple of patch {patch}"
        cells.append((Override.of(f"patch_size_{patch}", patch_size=patch), reason))
    if not f["patch"]:
        cells.append((Override.of("patch_size_x2"), "not a ViT-style model (no square patch_embed.proj)"))
    elif f["patch"] == 1:
        cells.append((Override.of("patch_size_x2"), "a 1x1 patch embedding of backbone features: nothing to resample"))
    cells.append((Override.of("dynamic_img_size", dynamic_img_size=True), no_pos))
    return cells


def axis_overrides(name: str) -> list[Override]:
    """BASE and every candidate of the axis, for `LoadingPath.overrides`: cheap, so collecting ~45 models
    stays fast; whether each applies is `override_reason`'s question, asked when the cell runs."""
    try:
        return [BASE] + [o for o, _ in override_axis(name)]
    except Exception:  # a model timm cannot build: its base cell reports why
        return [BASE]


@cache
def _fact_reasons(name: str) -> dict[str, str | None]:
    return {o.name: reason for o, reason in override_axis(name)}


def override_reason(name: str, override: Override) -> str | None:
    """Why the architecture does not accept this override (a fact of the model, else what timm raises when
    the model is built with it on the meta device), or None. For `LoadingPath.applies`; cached."""
    if override == BASE:
        return None  # the plain load: no fact of the model can rule it out, and none need be built
    if override.name in _fact_reasons(name):
        reason = _fact_reasons(name)[override.name]
        if reason:
            return reason
    kwargs = override.as_dict()
    if "img_size" in kwargs or "patch_size" in kwargs:
        # timm builds such a model but its forward asserts: the architecture refuses it, no load is at fault.
        side, patch = kwargs.get("img_size", _facts(name)["side"]), kwargs.get("patch_size", _facts(name)["patch"])
        if isinstance(side, int) and patch and side % patch and not kwargs.get("dynamic_img_pad"):
            return f"image side {side} is not a multiple of patch {patch}"
    return _probe(name, override.kwargs) if override.kwargs else None


def candidate_overrides(name: str) -> list[tuple[Override, str | None]]:
    """Every override of the axis with its full not-applicable reason (probing each on the meta device)."""
    return [(o, override_reason(name, o)) for o, _ in override_axis(name)]


def applicable_overrides(name: str) -> list[Override]:
    """BASE plus every override the architecture accepts (probes each: for explore and tests, not collection)."""
    try:
        return [BASE] + [o for o, reason in candidate_overrides(name) if reason is None]
    except Exception:  # a model timm cannot build: its base cell reports why
        return [BASE]


def skipped_overrides(name: str) -> dict[str, str]:
    return {o.name: reason for o, reason in candidate_overrides(name) if reason is not None}


def judge_adapted(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Hold a load to `adapted_state`: untouched tensors bit-equal, adapted ones equal timm's helpers'
    result, a changed head dropped (and nothing else), outputs equal a normal build holding the
    expected weights, output shape what the override asks for."""
    import timm

    module: torch.nn.Module = loaded["model"]
    kwargs = dict(loaded.get("kwargs") or {})
    torch.manual_seed(source.seed)
    reference = timm.create_model(source.name, pretrained=False, **kwargs).eval()
    checkpoint = loaded.get("checkpoint_timm") or source.model.state_dict()
    expected, fresh, adapted = adapted_state(checkpoint, source.model, reference)
    absent = [k for k, v in expected.items() if v is None]
    expected = {k: v for k, v in expected.items() if v is not None}
    actual = module.state_dict()
    report = diff_state(expected, {k: v for k, v in actual.items() if k not in fresh})
    evidence = Evidence(
        missing_keys=sorted(set(report["missing"]) | set(absent) | {k for k in fresh if k not in actual}),
        unexpected_keys=sorted(report["unexpected"]),
        shape_mismatches=report["shape"],
        dtype_mismatches=report["dtype"],
        value_mismatches=report["values"],
    )
    src_state = source.model.state_dict()
    kept = [k for k in fresh if k in actual and k in src_state and actual[k].shape == src_state[k].shape
            and torch.equal(actual[k].detach().cpu(), src_state[k])]
    evidence.extra = {"adapted": adapted, "fresh": fresh, "classifier_kept": kept, "override": kwargs}
    ref_buffers = nonpersistent_buffers(reference)
    rebuilt = diff_state(ref_buffers, nonpersistent_buffers(module))
    evidence.buffer_mismatches = [k for k, *_ in rebuilt["shape"] + rebuilt["values"]]
    if evidence.missing_keys or evidence.shape_mismatches:
        return evidence  # the reference below could not hold the expected weights
    # A normal build holding the expected weights (and the loaded model's fresh head) is the output oracle.
    reference.load_state_dict({**expected, **{k: actual[k] for k in fresh}}, strict=True)
    x = make_input(input_size_for(source.input_size, kwargs), source.seed, 1)
    module.eval()
    try:
        with torch.no_grad():
            want = reference(x)
    except Exception as error:  # e.g. timm 0.9's Swin merging an odd grid that patch_size=8 makes
        raise NotApplicable(f"a normal build with {kwargs} cannot run forward here: {_said(error)}") from error
    try:
        with torch.no_grad():
            got = (loaded.get("forward") or module)(x)
    except Exception as error:
        from .evidence import from_exception

        evidence.exception = from_exception(error).exception
        return evidence
    evidence.output = compare_outputs(want, got, OUTPUT_RTOL)
    explain_output(evidence, reference, module, x, loaded.get("forward"))
    return evidence


def _touched(ev: Evidence, reason: str, suffix: str) -> str | None:
    for key, want, got in ev.shape_mismatches:
        # a kernel off only in its input channels is the stem's adaptation, not a patch resample
        if key.endswith(suffix) and (reason != "patch" or list(want[-2:]) != list(got[-2:])):
            if ev.exception:  # a raised size mismatch lists (checkpoint shape, model shape)
                return f"{key}: the model needs {got}, the checkpoint gave {want} (load raised)"
            return f"{key}: the model needs {want}, the load gave {got}"
    adapted = ev.extra.get("adapted", {})
    for key, diff in ev.value_mismatches:
        if key.endswith(suffix) and reason in adapted.get(key, ""):
            return f"{key} has the right shape but not the resampled values (max abs diff {diff:.3g})"
    return None


def _patch_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "patch", "patch_embed.proj.weight")


def _pos_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "pos", "pos_embed")


def _rel_pos_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "rel_pos", "relative_position_bias_table")


def _raised_mismatches(ev: Evidence, ndim: int, dim: int) -> list[tuple[str, list[int], list[int]]]:
    """Size mismatches a strict load raised (checkpoint shape, model shape) that differ in `dim` only: when the
    load raises, no judge ran, so the shapes are all there is to tell which step was skipped."""
    if not ev.exception:
        return []
    return [(k, src, dst) for k, src, dst in ev.shape_mismatches
            if len(src) == len(dst) == ndim and [i for i in range(ndim) if src[i] != dst[i]] == [dim]]


def _conv_not_adapted(ev: Evidence) -> str | None:
    for key, src, dst in _raised_mismatches(ev, 4, 1):  # a conv kernel off in its input channels only
        return f"{key}: the checkpoint's kernel takes {src[1]} channels, the model's {dst[1]} (load raised)"
    adapted = ev.extra.get("adapted", {})
    keys = [k for k, r in adapted.items() if "in_chans" in r]
    for key, want, got in ev.shape_mismatches:
        if key in keys:
            return f"{key}: the model needs {want}, the load gave {got}"
    for key, diff in ev.value_mismatches:
        if key in keys:
            return f"{key} differs from adapt_input_conv of the source (max abs diff {diff:.3g})"
    return None


def _classifier_not_reset(ev: Evidence) -> str | None:
    raised = _raised_mismatches(ev, 2, 0) + _raised_mismatches(ev, 1, 0)
    if any(k.endswith(".weight") and len(src) == 2 for k, src, _ in raised):  # a linear layer off in its outputs
        return ", ".join(f"{k}: checkpoint {src}, model {dst}" for k, src, dst in raised) + \
            " (the source head reached a model with another class count; load raised)"
    if ev.extra.get("classifier_kept"):
        return f"{', '.join(ev.extra['classifier_kept'])} still hold the source's head"
    out, wanted = ev.output, ev.extra.get("override", {}).get("num_classes")
    if out and wanted is not None and out["shape"] != out["expected_shape"]:
        return f"num_classes={wanted} asked, the model outputs {out['shape']} (expected {out['expected_shape']})"
    return None


SIGNATURES: tuple[Signature, ...] = (
    Signature("patch-resample-skipped", "the patch embedding was not resampled to the requested patch size",
              "the checkpoint filter must call resample_patch_embed on every layout it converts",
              _patch_skipped),
    Signature("pos-embed-resample-skipped", "the position embedding was not resampled to the model's grid",
              "the checkpoint filter must call resample_abs_pos_embed on every layout it converts", _pos_skipped),
    Signature("rel-pos-table-resize-skipped", "a window's relative position bias table was not resized to its window",
              "the checkpoint filter must call resize_rel_pos_bias_table for every window an override changed",
              _rel_pos_skipped),
    Signature("input-conv-not-adapted", "the first conv was not adapted to the requested in_chans",
              "load_pretrained must run adapt_input_conv on the pretrained_cfg first_conv", _conv_not_adapted),
    Signature("classifier-not-reset", "the classifier was kept although num_classes changed",
              "drop the pretrained_cfg classifier keys when num_classes differs", _classifier_not_reset),
)


# Repro PREPARE for adapted loads (LoadingPath.repro_prepare): the plain source is saved and loaded with
# the override, and the loaded model is held to `adapted_state` of the checkpoint, as `judge_adapted` does.
# CHECKPOINT is replaced per path by the expression giving the checkpoint in timm's layout.
_ADAPTED_PREPARE = repro.BUILD_SOURCE + '''
loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
kwargs = loaded["kwargs"]
torch.manual_seed(spec["seed"])
target = timm.create_model(spec["name"], pretrained=False, **kwargs).eval()  # a normal build with the override
checkpoint = CHECKPOINT
expected_state, fresh, adapted = adapted_state(checkpoint, source, target)
print("adapted by timm's helpers:", adapted, "| rightly fresh (not compared):", fresh)
actual = loaded["model"].state_dict()
absent = [k for k, v in expected_state.items() if v is None]  # the checkpoint has nothing for them
loaded["missing_keys"] = list(loaded.get("missing_keys") or []) + absent
expected_state = {{k: v for k, v in expected_state.items() if v is not None}}
source_state = source.state_dict()
kept = [k for k in fresh if k in actual and k in source_state and actual[k].shape == source_state[k].shape
        and torch.equal(actual[k], source_state[k])]
if kept:
    print("the source's head survived a class-count change:", kept)  # left out below, so CHECK names them
expected_state.update({{k: actual[k] for k in fresh if k in actual and k not in kept}})
target_state = target.state_dict()
target.load_state_dict({{k: v for k, v in expected_state.items()
                        if k in target_state and v.shape == target_state[k].shape}}, strict=False)
chans, *side = {input_size!r}
if "img_size" in kwargs:
    side = [kwargs["img_size"]] * 2 if isinstance(kwargs["img_size"], int) else list(kwargs["img_size"])
x = make_input((int(kwargs.get("in_chans", chans)), *side), spec["seed"], 1)
with torch.no_grad():
    reference = target(x)
'''


def adapted_repro_prepare(checkpoint: str = "source.state_dict()") -> str:
    """The PREPARE template for a path whose cells are judged by `judge_adapted`; `checkpoint` is a Python
    expression (over `source`, `loaded`) for the checkpoint in timm's layout."""
    return _ADAPTED_PREPARE.replace("CHECKPOINT", checkpoint)
