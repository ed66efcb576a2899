"""Signatures of deployment failures: fused (reparameterized) models and their exports.

They read the `extra` evidence that compat_tests/reparam_checks.py records; each path lists the ones
it can produce, ahead of the shared registry.
"""

from __future__ import annotations

from .evidence import Evidence
from .signatures import Signature

_NONE_CALLED = "'NoneType' object is not callable"


def _none_module_called(ev: Evidence) -> str | None:
    if not ev.exception or ev.exception["type"] != "TypeError" or _NONE_CALLED not in ev.exception["message"]:
        return None
    where = ev.exception.get("where", "")
    if attribute := ev.extra.get("none_called"):
        return f"{attribute} is None after reparameterization, yet forward calls it (at {where})"
    candidates = ev.extra.get("none_attributes") or []
    if candidates:  # the frame was not readable; name the slots that became None
        return f"a None attribute was called at {where}; None after fusing: {', '.join(candidates[:5])}"
    return f"a None attribute was called as a module at {where}"


def _output_detail(ev: Evidence) -> str | None:
    out = ev.output
    if out is None or out.get("ok"):
        return None
    if out["shape"] != out["expected_shape"]:
        return f"output shape {out['shape']}, expected {out['expected_shape']}"
    return (f"max abs error {out['max_error']:.3g} > tolerance {out['tolerance']:.3g} "
            f"({out.get('rtol', 0):.0e} x output scale {out.get('scale', 0):.3g})")


def _reparam_drift(ev: Evidence) -> str | None:
    return _output_detail(ev) if ev.extra.get("check") == "reparam" else None


NONE_MODULE_CALLED = Signature(
    "none-module-called", "forward calls a submodule that reparameterization set to None",
    "the fuse/reparameterize method must leave an nn.Identity (or the forward must skip the None slot)",
    _none_module_called)
REPARAM_OUTPUT_DRIFT = Signature(
    "reparam-output-drift", "the fused model's outputs differ from the unfused model's beyond float rounding",
    "a branch, norm or bias was dropped or mis-folded by the fuse/reparameterize method", _reparam_drift)


def _failure(ev: Evidence, exporter: str) -> dict | None:
    return ev.extra.get("export_failure") if ev.extra.get("exporter") == exporter else None


def _failure_text(failure: dict) -> str:
    first = (failure.get("message", "").strip().splitlines() or [""])[0][:200]
    where = f" at {failure['where']}" if failure.get("where") else ""
    return f"{failure.get('stage')} stage: {failure.get('type')}: {first}{where}"


# Signature.limitation: the runner records such cells as skipped, not failed.
_LIMITATION = {"limitation": True}


def export_signatures(exporter: str) -> tuple[Signature, ...]:
    """The signatures one exporter's path adds, named `<kind>:<exporter>`."""

    def broken(ev: Evidence) -> str | None:
        failure = _failure(ev, exporter)
        if failure and ev.extra.get("unfused_exports") is True:
            return f"the unfused model exports, the fused one does not: {_failure_text(failure)}"
        return None

    def unsupported(ev: Evidence) -> str | None:
        failure = _failure(ev, exporter)
        if not failure:
            return None
        unfused = ev.extra.get("unfused_exports")
        also = f" (the unfused model fails too: {unfused})" if isinstance(unfused, str) else ""
        return _failure_text(failure) + also

    def mismatch(ev: Evidence) -> str | None:
        return _output_detail(ev) if ev.extra.get("exporter") == exporter else None

    return (
        Signature(f"export-broken-by-reparam:{exporter}",
                  f"reparameterization made the model unexportable by {exporter}",
                  "the fuse/reparameterize method left state the exporter cannot handle (e.g. a list "
                  "where a ModuleList was)", broken),
        Signature(f"export-unsupported:{exporter}",
                  f"{exporter} cannot handle this architecture (an exporter limitation, not a loading bug)",
                  "track it against the exporter; the eager model is correct", unsupported, **_LIMITATION),
        Signature(f"export-mismatch:{exporter}", f"the {exporter} export runs but disagrees with eager",
                  "the exporter or the model's export-specific code path computes something else", mismatch),
    )


# Ordered for the fused-model paths: a None call explains every later symptom.
REPARAM_SIGNATURES: tuple[Signature, ...] = (NONE_MODULE_CALLED, REPARAM_OUTPUT_DRIFT)
