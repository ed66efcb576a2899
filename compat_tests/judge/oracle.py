"""The oracle: what "loaded correctly" means, in one place.

A load is correct when the loader reported no missing or unexpected keys, every tensor of the loaded
model equals the source's bit for bit, and the outputs agree. Outputs get a tolerance (and tensors
none) because equal weights can still give last-bit differences on CPU when a loaded tensor's memory
layout or alignment differs, which changes the kernel path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..core.evidence import Evidence, from_exception
from ..source.models import SourceModel, nonpersistent_buffers
from .expected import rightly_fresh

# Relative to the reference output's largest magnitude (at least 1).
OUTPUT_RTOL = 1e-5


def diff_state(expected, actual):
    """Compare two state dicts: missing/unexpected keys, shape, dtype and value differences.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import torch

    report = {"missing": [], "unexpected": [], "shape": [], "dtype": [], "values": []}
    report["missing"] = [k for k in expected if k not in actual]
    report["unexpected"] = [k for k in actual if k not in expected]
    for key, want in expected.items():
        got = actual.get(key)
        if got is None:
            continue
        if tuple(want.shape) != tuple(got.shape):
            report["shape"].append((key, list(want.shape), list(got.shape)))
            continue
        if want.dtype != got.dtype:
            report["dtype"].append((key, str(want.dtype), str(got.dtype)))
        if got.is_meta and not want.is_meta:  # left without data: a loader that never materialised it
            report["values"].append((key, float("inf")))
            continue
        got = got.detach().to("cpu", want.dtype)
        if not torch.equal(want.detach().cpu(), got):
            diff = (want.detach().cpu().double() - got.double()).abs().max().item() if want.numel() else 0.0
            report["values"].append((key, diff))
    return report


def diff_structure(expected, actual, shapes=True):
    """Compare two state dicts by keys, shapes (unless `shapes` is False) and dtypes: no values needed, so
    it works on the meta device.

    Standalone on purpose: structural repro scripts embed this function's source verbatim.
    """
    report = {"missing": [k for k in expected if k not in actual],
              "unexpected": [k for k in actual if k not in expected], "shape": [], "dtype": []}
    for key, want in expected.items():
        got = actual.get(key)
        if got is None:
            continue
        if shapes and tuple(want.shape) != tuple(got.shape):
            report["shape"].append((key, list(want.shape), list(got.shape)))
        elif want.dtype != got.dtype:
            report["dtype"].append((key, str(want.dtype), str(got.dtype)))
    return report


def compare_outputs(reference, output, rtol=1e-5):
    """Shape and max abs error of `output` against `reference` (standalone; embedded in repros)."""
    import torch

    result = {"ok": False, "expected_shape": list(reference.shape), "shape": list(output.shape)}
    if tuple(reference.shape) != tuple(output.shape):
        return result
    ref, out = reference.detach().double(), output.detach().cpu().double()
    tolerance = rtol * max(1.0, ref.abs().max().item())
    both_nan = torch.isnan(ref) & torch.isnan(out)
    error = (ref - out).abs().masked_fill(both_nan, 0.0)
    max_error = error.max().item() if error.numel() else 0.0
    result.update(max_error=max_error, tolerance=tolerance, ok=bool(max_error <= tolerance))
    return result


def _reported(loaded: dict[str, Any] | None, key: str) -> list[str]:
    return [str(k) for k in ((loaded or {}).get(key) or [])]


def state_evidence(report: dict[str, list], loaded: dict[str, Any] | None = None, also_missing: Iterable[str] = (),
                   **fields: Any) -> Evidence:
    """Evidence from a `diff_state`/`diff_structure` report, joined with the keys the loader itself reported
    missing or unexpected (a roundtrip's `missing_keys`/`unexpected_keys`) and any the judge adds."""
    return Evidence(
        missing_keys=sorted(set(report["missing"]) | set(_reported(loaded, "missing_keys")) | set(also_missing)),
        unexpected_keys=sorted(set(report["unexpected"]) | set(_reported(loaded, "unexpected_keys"))),
        shape_mismatches=report["shape"],
        dtype_mismatches=report["dtype"],
        value_mismatches=report.get("values", []),
        **fields,
    )


def forward_into(evidence: Evidence, forward: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """`forward(x)` without gradients; when it raises, the exception goes into `evidence` and None comes back
    (the load "worked" but the model no longer runs: the key evidence already gathered is kept)."""
    try:
        with torch.no_grad():
            return forward(x)
    except Exception as error:  # whatever the library raises is the finding
        evidence.exception = from_exception(error).exception
        return None


def outputs_against(evidence: Evidence, reference: torch.nn.Module, want: torch.Tensor, loaded: dict[str, Any],
                    x: torch.Tensor, as_run: torch.Tensor | None = None) -> Evidence:
    """The loaded model's output on `x` against `want` (what `reference`, a normal build holding the expected
    weights, gives), with the first layer built or computing differently named where they disagree. `as_run` is
    the input as the loader documents running it (a wrapper casting it to the model's dtype), when not `x`."""
    module: torch.nn.Module = loaded["model"].eval()
    got = forward_into(evidence, loaded.get("forward") or module, x)
    if got is not None:
        evidence.output = compare_outputs(want, got, OUTPUT_RTOL)
        explain_output(evidence, reference, module, x if as_run is None else as_run, loaded.get("forward"))
    return evidence


def judge_structure(source: SourceModel, loaded: dict[str, Any],
                    written: Callable[[torch.Tensor], bool] | None = None) -> Evidence:
    """Evidence for a structural (meta-device) cell: keys, shapes and dtypes.

    When the loaded model was built with an override the source was not (a checkpoint adapted on load),
    its own build defines its keys and shapes and the loader's strict load has already checked them
    against the checkpoint; what is left to compare is the dtypes and what the loader reported.

    `written` is given for a path that builds a model only to load into it (`LoadingPath.loads_into_build`):
    whether a `copy_` of the load wrote a tensor (`MetaShapes.wrote`). No value shows on meta whether the load
    reached every tensor, so those no copy wrote are named (`unwritten`): the tensors the numeric judge would find
    still at their init, unlike the perturbed source.
    """
    module: torch.nn.Module = loaded["model"]
    overridden = dict(loaded.get("kwargs") or source.kwargs) != dict(source.kwargs)
    # The tensors themselves (keep_vars), which `written` knows by identity; shapes and dtypes are theirs too.
    expected, actual = source.state(), module.state_dict(keep_vars=True)
    if overridden:
        expected = {k: v for k, v in expected.items() if k in actual}
    report = diff_structure(expected, actual, shapes=not overridden)
    if overridden:
        report["unexpected"] = []
    evidence = state_evidence(report, loaded)
    if written is not None:
        evidence.unwritten = unwritten(actual, written, rightly_fresh(source.model, module))
    return evidence


def unwritten(state, was_written, fresh=()):
    """Keys of `state` (a model's `state_dict(keep_vars=True)`: the tensors themselves) that the load never wrote
    (`was_written(tensor)` is False), leaving out
    `fresh` and what the source's perturbation leaves alone (integer index tables, empty tensors): a build computes
    those as the source's build did, so their values prove nothing either way. (A tensor of only infinities, which
    the perturbation leaves alone too, cannot be told apart on meta: it counts.)

    Standalone on purpose: structural repro scripts embed this function's source verbatim.
    """
    return [key for key, tensor in state.items()
            if key not in fresh and tensor.is_floating_point() and tensor.numel() and not was_written(tensor)]


def module_differences(expected: torch.nn.Module, actual: torch.nn.Module, limit: int = 16
                       ) -> list[tuple[str, str, str]]:
    """(module name, expected, actual) where the two models' layers are configured differently (class or
    settings such as BatchNorm's eps): what equal weights and unequal outputs usually come down to."""
    def layers(model: torch.nn.Module) -> dict[str, str]:
        return {name: f"{type(m).__name__}({m.extra_repr()})" for name, m in model.named_modules()}

    want, got = layers(expected), layers(actual)
    found = [(name, want[name], got.get(name, "(absent)")) for name in want if got.get(name) != want[name]]
    return found[:limit]


# A first diverging layer off by less than this (relative to that layer's output) is float noise from a
# different kernel path (memory alignment, thread count), which deep nets with perturbed weights amplify.
LAYER_NOISE_RTOL = 1e-4


def first_divergence(expected: torch.nn.Module, actual: torch.nn.Module, x: torch.Tensor,
                     forward=None) -> dict[str, Any] | None:
    """Run both models on `x` and name the first module (in execution order) whose output differs, with the
    size of the difference relative to that output; None when no module output differs."""
    def record(model: torch.nn.Module, into: list) -> list:
        def hook_for(name: str):
            def hook(module, inputs, output):
                if isinstance(output, torch.Tensor):
                    into.append((name, output.detach().clone()))
            return hook
        return [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]

    seen_expected: list = []
    seen_actual: list = []
    handles = record(expected, seen_expected) + record(actual, seen_actual)
    try:
        with torch.no_grad():
            expected(x)
            (forward or actual)(x)
    finally:
        for handle in handles:
            handle.remove()
    outputs = dict(seen_actual)
    for name, want in seen_expected:
        got = outputs.get(name)
        if got is None or got.shape != want.shape or torch.equal(got, want):
            continue
        error = (got.double() - want.double()).abs().nan_to_num(nan=float("inf")).max().item()
        scale = max(1.0, want.double().abs().nan_to_num().max().item())
        # A layer computing in half precision rounds to its own resolution: one of its ulps is noise there.
        noise = max(LAYER_NOISE_RTOL, torch.finfo(want.dtype).eps if want.is_floating_point() else 0.0)
        return {"module": name, "max_error": error, "relative": error / scale, "noise": noise}
    return None


def explain_output(evidence: Evidence, expected: torch.nn.Module, actual: torch.nn.Module, x: torch.Tensor,
                    forward=None) -> None:
    """Equal weights and buffers, unequal outputs: name the layers built differently, else the first layer
    that diverges; a first divergence within float noise is a pass (kept in the evidence)."""
    if evidence.output is None or evidence.output["ok"] or evidence.value_mismatches or evidence.buffer_mismatches:
        return
    evidence.extra["module_differences"] = module_differences(expected, actual)
    if evidence.extra["module_differences"]:
        return
    divergence = first_divergence(expected, actual, x, forward)
    if divergence is None:
        return
    evidence.output["first_divergence"] = divergence
    if divergence["relative"] <= divergence["noise"]:
        evidence.output["ok"] = True
        evidence.output["amplified_noise"] = True


def judge(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Evidence for a completed load. `loaded` is what a path's roundtrip returned."""
    module: torch.nn.Module = loaded["model"]
    expected, actual = source.model.state_dict(), module.state_dict()
    report = diff_state(expected, actual)
    evidence = state_evidence(report, loaded)
    evidence.at_init = [
        key for key, _ in report["values"]
        if key in source.constant_inits and torch.equal(actual[key].detach().cpu(), source.constant_inits[key])
    ]
    # Both sides as built, before any forward (the source has already run one)...
    rebuilt = diff_state(source.built_buffers, nonpersistent_buffers(module, actual))
    differ = [k for k, *_ in rebuilt["shape"] + rebuilt["values"]]
    evidence.buffer_mismatches = differ
    module.eval()
    output = forward_into(evidence, loaded.get("forward") or module, source.input())
    if output is None:
        return evidence
    evidence.output = compare_outputs(source.reference, output, OUTPUT_RTOL)
    if differ:
        # ...and again after both ran the same input: a placeholder the forward recomputes (ConViT's
        # rel_indices) is a cache, not a buffer the load failed to rebuild.
        after = diff_state(nonpersistent_buffers(source.model), nonpersistent_buffers(module))
        still = {k for k, *_ in after["shape"] + after["values"]} | set(after["missing"]) | set(after["unexpected"])
        evidence.buffer_mismatches = [k for k in differ if k in still]
    explain_output(evidence, source.model, module, source.input(), loaded.get("forward"))
    return evidence
