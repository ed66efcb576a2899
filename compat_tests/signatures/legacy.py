"""Detectors of the `legacy` path: failures that only appear when one release reads another's files.

They read `Evidence.extra` (artifact, kind, producer/consumer versions, stage) set by the legacy judge,
so each message names the releases on both sides.
"""

from __future__ import annotations

from ..core.evidence import Evidence
from .detect import message, output_detail, raised

TAMPERED = r"sha256 mismatch"
NO_ATTRIBUTE = r"'(\w+)' object has no attribute '(\w+)'"
CANT_GET = r"Can't get attribute '([\w.]+)' on <module '([\w.]+)'"
NO_MODULE = r"No module named '([\w.]+)'"
_tampered = raised(TAMPERED)
_no_attribute = raised(NO_ATTRIBUTE, "AttributeError")
_cant_get = raised(CANT_GET)
_no_module = raised(NO_MODULE, "ModuleNotFoundError")
_no_import = raised(NO_MODULE, "ImportError")


def _releases(ev: Evidence) -> str:
    produced = ev.extra.get("producer_versions") or {}
    consumed = ev.extra.get("consumer_versions") or {}
    package = "transformers" if produced.get("transformers") else "timm"
    if package == "timm":
        return f"written by timm {produced.get('timm')}, read by timm {consumed.get('timm')}"
    return (f"written by transformers {produced.get(package)} (timm {produced.get('timm')}), "
            f"read by transformers {consumed.get(package)} (timm {consumed.get('timm')})")


def tampered(ev: Evidence) -> str | None:
    if ev.extra.get("stage") != "verify" or not _tampered(ev):
        return None
    return f"{ev.extra.get('artifact')}: {message(ev).splitlines()[0]}"


def missing_attribute(ev: Evidence) -> str | None:
    # Only a whole pickled object can lack an attribute its class's __init__ now sets.
    if ev.extra.get("kind") != "pickle" or not (m := _no_attribute(ev)):
        return None
    where = (ev.exception or {}).get("where") or "?"
    return f"{m.group(1)}.{m.group(2)} ({ev.extra.get('artifact')}, {_releases(ev)}; raised at {where})"


def class_moved(ev: Evidence) -> str | None:
    if ev.extra.get("stage") != "load":
        return None
    if m := _cant_get(ev):
        return f"{m.group(2)}.{m.group(1)} is gone ({ev.extra.get('artifact')}, {_releases(ev)})"
    if m := _no_module(ev) or _no_import(ev):
        return f"module {m.group(1)} is gone ({ev.extra.get('artifact')}, {_releases(ev)})"
    return None


def legacy_output_mismatch(ev: Evidence) -> str | None:
    if not ev.extra:
        return None
    # Tensors that differ already have their own name; this one is "same weights, other numbers".
    if ev.missing_keys or ev.unexpected_keys or ev.shape_mismatches or ev.value_mismatches:
        return None
    detail = output_detail(ev.output, reference="producer's")
    return detail and f"{detail} ({ev.extra.get('artifact')}, {_releases(ev)})"
