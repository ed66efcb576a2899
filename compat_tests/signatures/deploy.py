"""Detectors of deployment failures: fused (reparameterized) models and their exports.

They read the `extra` evidence that judge/reparam.py records (`check`, `exporter`, `export_failure`,
`unfused_exports`, `none_called`).
"""

from __future__ import annotations

from ..core.evidence import Evidence
from .detect import output_detail, raised

# The exporters the export path runs, one cell each; each has its own three signatures in the catalog.
EXPORTERS = ("torch_export", "jit", "onnx")

NONE_CALLED = r"'NoneType' object is not callable"
_none_called = raised(NONE_CALLED, "TypeError")


def none_module_called(ev: Evidence) -> str | None:
    if not _none_called(ev):
        return None
    where = (ev.exception or {}).get("where", "")
    if attribute := ev.extra.get("none_called"):
        return f"{attribute} is None after reparameterization, yet forward calls it (at {where})"
    candidates = ev.extra.get("none_attributes") or []
    if candidates:  # the frame was not readable; name the slots that became None
        return f"a None attribute was called at {where}; None after fusing: {', '.join(candidates[:5])}"
    return f"a None attribute was called as a module at {where}"


def reparam_drift(ev: Evidence) -> str | None:
    return output_detail(ev.output) if ev.extra.get("check") == "reparam" else None


def _failure(ev: Evidence, exporter: str) -> dict | None:
    return ev.extra.get("export_failure") if ev.extra.get("exporter") == exporter else None


def _failure_text(failure: dict) -> str:
    first = (failure.get("message", "").strip().splitlines() or [""])[0][:200]
    where = f" at {failure['where']}" if failure.get("where") else ""
    return f"{failure.get('stage')} stage: {failure.get('type')}: {first}{where}"


def export_broken(exporter: str):
    def broken(ev: Evidence) -> str | None:
        failure = _failure(ev, exporter)
        if failure and ev.extra.get("unfused_exports") is True:
            return f"the unfused model exports, the fused one does not: {_failure_text(failure)}"
        return None

    return broken


def export_unsupported(exporter: str):
    def unsupported(ev: Evidence) -> str | None:
        failure = _failure(ev, exporter)
        if not failure:
            return None
        unfused = ev.extra.get("unfused_exports")
        also = f" (the unfused model fails too: {unfused})" if isinstance(unfused, str) else ""
        return _failure_text(failure) + also

    return unsupported


def export_mismatch(exporter: str):
    def mismatch(ev: Evidence) -> str | None:
        return output_detail(ev.output) if ev.extra.get("exporter") == exporter else None

    return mismatch
