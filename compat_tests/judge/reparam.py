"""Judging fused (deployment) models: shared by the reparam, reparam_roundtrip and export_* paths.

Tolerances, all relative to the largest magnitude of the reference output (no floor at 1: classifier
logits of a perturbed model are often ~0.1, and a floor would loosen the check tenfold):

* `REPARAM_RTOL` = 1e-5, fused vs unfused. Folding BatchNorm into a conv/linear reorders float32
  arithmetic. Measured drift, as a fraction of the output scale, over 25 models of 13 families (the
  smoke tier's eleven plus levit_256, fastvit_sa24/mci0, repvit_m1_5, mobileone_s4, efficientvit_m5,
  tiny_vit_21m_224, iformer_t, efficientvim_m1, repvgg_b0, shvit_s4, nextvit_base, repghostnet_200,
  ghostnetv3_100): 1.1e-7..4.6e-7, i.e. a few float32 ulps (1.2e-7). 1e-5 leaves a 20x margin over the
  worst. Faults move outputs far more: a dropped identity branch by ~1 of the scale, a BatchNorm
  folded with eps 1e-3 instead of 1e-5 by ~4e-5 (tests/test_reparam.py injects both; a 1e-4 tolerance
  would let the eps fault pass).
* `EXPORT_RTOL` = 1e-4, exported vs eager (the same deploy model). torch.export and TorchScript
  reproduce eager bit for bit on the smoke models; onnxruntime runs its own kernels (GELU, softmax,
  LayerNorm, conv algorithms) and differs by up to ~6e-7 of the scale there. An export-only bug (a
  wrong graph, an export-only code path) moves outputs by far more, so the looser bound costs nothing.
* `ROUNDTRIP_RTOL` = the base oracle's 1e-5: a saved and reloaded fused model must equal the fused
  model it came from, exactly in its tensors.

Model bug or exporter limitation: the deploy model is first run eagerly. If that raises, the model is
broken (e.g. a submodule reparameterization set to None) whatever exporter comes next. If eager runs
and the exporter raises, the same exporter is tried on the unfused model: when that one exports, the
fusion made the model unexportable (`export-broken-by-reparam:<exporter>`, a timm bug); when it also
fails, the exporter cannot handle the architecture (`export-unsupported:<exporter>`, a limitation,
reported apart from loading failures). An exported model that runs but disagrees with eager is
`export-mismatch:<exporter>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..core.evidence import Evidence, from_exception
from ..source.models import BUILD_SOURCE, SourceModel
from .check import Check
from .oracle import OUTPUT_RTOL, compare_outputs, diff_state, nonpersistent_buffers, state_evidence
from .reparameterizable import called_none_attribute, is_reparameterizable, none_attributes, reparam_sites

REPARAM_RTOL = 1e-5
EXPORT_RTOL = 1e-4
ROUNDTRIP_RTOL = OUTPUT_RTOL


def compare_scaled(reference, output, rtol):
    """compare_outputs with the tolerance `rtol` x the reference's largest magnitude (standalone; in repros)."""
    result = compare_outputs(reference, output, rtol)
    if "max_error" not in result:  # shapes differ
        return result
    scale = reference.detach().abs().max().item() if reference.numel() else 0.0
    tolerance = rtol * (scale if scale > 0 else 1.0)
    max_error = result["max_error"]
    result.update(scale=scale, rtol=rtol, tolerance=tolerance, ok=bool(max_error <= tolerance))
    return result


def model_failure(error: BaseException, unfused: torch.nn.Module, deploy: torch.nn.Module,
                  extra: dict[str, Any]) -> Evidence:
    """Evidence for a deploy model whose eager forward raised: a model bug, never an exporter's."""
    evidence = from_exception(error)
    evidence.extra = {**extra, "stage": "eager", "none_attributes": none_attributes(unfused, deploy)}
    if (called := called_none_attribute(error, deploy)) is not None:
        evidence.extra["none_called"] = called
    return evidence


def judge_reparam(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """The fused model runs, and its outputs match the unfused source's within REPARAM_RTOL."""
    fused: torch.nn.Module = loaded["model"]
    extra: dict[str, Any] = {"check": "reparam", "sites": len(reparam_sites(source.model))}
    try:
        with torch.no_grad():
            output = fused(source.input())
    except Exception as error:
        return model_failure(error, source.model, fused, extra)
    evidence = Evidence(extra=extra)
    evidence.output = compare_scaled(source.reference, output, REPARAM_RTOL)
    return evidence


def _judge_restored(source: SourceModel, fused: torch.nn.Module, restored: torch.nn.Module, expected: torch.Tensor,
                    extra: dict[str, Any]) -> Evidence:
    report = diff_state(fused.state_dict(), restored.state_dict())
    rebuilt = diff_state(nonpersistent_buffers(fused), nonpersistent_buffers(restored))
    evidence = state_evidence(report, buffer_mismatches=[k for k, *_ in rebuilt["shape"] + rebuilt["values"]],
                              extra=dict(extra))
    try:
        with torch.no_grad():
            output = restored(source.input())
    except Exception as error:
        failure = model_failure(error, fused, restored, evidence.extra)
        failure.extra["stage"] = "reloaded"
        return failure
    evidence.output = compare_outputs(expected, output, ROUNDTRIP_RTOL)
    return evidence


def judge_roundtrip(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """A saved and reloaded fused model equals the fused model it came from: keys, tensors, outputs.

    Both saves are judged; the first that fails gives the evidence, the other's verdict goes in `extra`.
    """
    fused: torch.nn.Module = loaded["fused"]
    extra: dict[str, Any] = {"check": "reparam_roundtrip"}
    try:
        with torch.no_grad():
            expected = fused(source.input())
    except Exception as error:  # the fusion itself is broken; the reparam cell says so too
        return model_failure(error, source.model, fused, extra)
    verdicts = {save: _judge_restored(source, fused, loaded[key], expected, {**extra, "save": save})
                for save, key in (("state_dict", "model"), ("pickle", "pickled"))}
    for evidence in verdicts.values():
        evidence.extra["saves"] = {s: ("ok" if e.clean else "failed") for s, e in verdicts.items()}
        if not evidence.clean:
            return evidence
    return verdicts["state_dict"]


def judge_export(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """The export path's judge (see the module docstring for how blame is assigned)."""
    deploy: torch.nn.Module = loaded["model"]
    exporter = loaded["exporter"]
    extra: dict[str, Any] = {"check": "export", "exporter": exporter,
                             "fused": bool(is_reparameterizable(source.name))}
    x = source.input()
    try:
        with torch.no_grad():
            eager = deploy(x)
    except Exception as error:
        return model_failure(error, source.model, deploy, extra)
    stage = loaded["stage"]
    try:
        output = loaded["forward"](x)
    except Exception as error:
        evidence = from_exception(error)
        extra["stage"] = stage.get("now")
        extra["export_failure"] = {"stage": stage.get("now"), **(evidence.exception or {})}
        if extra["fused"]:
            extra["unfused_exports"] = _exports(loaded["unfused_forward"], x)
        evidence.extra = extra
        return evidence
    evidence = Evidence(extra=extra)
    evidence.output = compare_scaled(eager, output, EXPORT_RTOL)
    return evidence


def _exports(forward: Callable[[torch.Tensor], Any], x: torch.Tensor) -> bool | str:
    """True when the unfused model goes through the same exporter; else the exception's first line."""
    try:
        forward(x)
    except Exception as error:
        return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
    return True


# --- repro scripts -------------------------------------------------------------------------------------------
# The generic repro (repro.templates PREPARE + CHECK) compares the loaded model's state_dict with the source's,
# which a fused model differs from by design. These paths hand repro.script their own prepare template: it
# builds the source as the runner did, runs the roundtrip, then the path's standalone check (embedded as a
# helper), which raises exactly when the cell fails and records what it saw in the script's FOUND (read by the
# verdict on the cell's signature); it then points the generic check at the checked model, which it trivially
# meets.


def repro_prepare(check: str) -> str:
    """A replacement for the generic repro template that ends in `check(source, loaded, x, reference, FOUND)`."""
    return _PREPARE.replace("<CHECK>", check)


_PREPARE = BUILD_SOURCE + '''
x = make_input({input_size!r}, spec["seed"], {batch})
with torch.no_grad():
    reference = source(x)

loaded = {roundtrip}(source, tempfile.mkdtemp(dir=WORKDIR), spec)  # an exception here is the failure
<CHECK>(source, loaded, x, reference, FOUND)  # this path's own verdict: raises when the cell fails

# Passed: the generic state/output check below now compares the checked model with itself.
loaded = {{"model": loaded["model"]}}
expected_state = loaded["model"].state_dict()
expected_model = expected_buffers = None
with torch.no_grad():
    reference = loaded["model"](x)
'''


# The standalone twins of the judges above, embedded in repro scripts (they raise exactly when a cell fails).


def reparam_check(source, loaded, x, reference, found, rtol=1e-5):
    """Repro check: the fused model runs and matches the unfused within rtol x the output's scale."""
    import torch

    with torch.no_grad():
        output = loaded["model"](x)  # a None submodule called as a module raises here
    result = compare_scaled(reference, output, rtol)
    found["output"] = result
    print("fused vs unfused:", result)
    assert result["ok"], "the fused model's outputs drift from the unfused model's"


def fused_save_check(source, loaded, x, reference, found):
    """Repro check: both reloads equal the fused model in keys, tensors, computed buffers and outputs."""
    import torch

    with torch.no_grad():
        expected = loaded["fused"](x)
    failures = {}
    for save, key in (("state_dict", "model"), ("pickle", "pickled")):
        report = diff_state(loaded["fused"].state_dict(), loaded[key].state_dict())
        rebuilt = diff_state(nonpersistent_buffers(loaded["fused"]), nonpersistent_buffers(loaded[key]))
        buffers = [k for k, *_ in rebuilt["shape"] + rebuilt["values"]]
        with torch.no_grad():
            output = compare_outputs(expected, loaded[key](x), 1e-5)
        problems = {k: v[:10] for k, v in report.items() if v}
        if buffers:
            problems["computed buffers unlike the fused model's"] = buffers[:10]
        print(save, "problems:", problems, "output:", output)
        if problems or not output["ok"]:
            failures[save] = problems or output
            if len(failures) == 1:  # the first save that fails is the one the cell's evidence describes
                found.update(state=report, buffers=buffers, output=output)
    assert not failures, f"reloaded fused model differs: {failures}"


def export_check(source, loaded, x, reference, found, rtol=1e-4):
    """Repro check: the deploy model runs eagerly, exports, and the export matches eager. When the exporter
    raises, the unfused model goes through the same exporter: whether it does tells a fusion that broke the export
    from an architecture the exporter cannot handle."""
    import torch

    with torch.no_grad():
        eager = loaded["model"](x)  # raising here is a model bug, not the exporter's
    try:
        output = loaded["forward"](x)
    except Exception:
        found["export_failure"] = loaded["stage"]["now"]
        print(loaded["exporter"], "failed at stage", found["export_failure"])
        try:
            loaded["unfused_forward"](x)
            found["unfused_exports"] = True
        except Exception as unfused:
            found["unfused_exports"] = f"{type(unfused).__name__}: {(str(unfused).strip().splitlines() or [''])[0]}"
        print("the unfused model through the same exporter:",
              "exports" if found["unfused_exports"] is True else f"fails too ({found['unfused_exports'][:200]})")
        raise
    result = compare_scaled(eager, output, rtol)
    found["output"] = result
    print("exported vs eager:", result)
    assert result["ok"], "the exported model disagrees with the eager model"


REPARAM = Check(judge_reparam, (compare_scaled, reparam_check), repro_prepare("reparam_check"))
REPARAM_ROUNDTRIP = Check(judge_roundtrip, (nonpersistent_buffers, fused_save_check), repro_prepare("fused_save_check"))
EXPORT = Check(judge_export, (compare_scaled, export_check), repro_prepare("export_check"))
