"""Signatures of the `legacy` path: failures that only appear when one release reads another's files.

They read `Evidence.extra` (artifact, kind, producer/consumer versions, stage) set by the legacy judge,
so each message names the releases on both sides.
"""

from __future__ import annotations

import re

from .evidence import Evidence
from .signatures import Signature

_NO_ATTRIBUTE = re.compile(r"'(\w+)' object has no attribute '(\w+)'")
_CANT_GET = re.compile(r"Can't get attribute '([\w.]+)' on <module '([\w.]+)'")
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def _releases(ev: Evidence) -> str:
    produced = ev.extra.get("producer_versions") or {}
    consumed = ev.extra.get("consumer_versions") or {}
    package = "transformers" if produced.get("transformers") else "timm"
    if package == "timm":
        return f"written by timm {produced.get('timm')}, read by timm {consumed.get('timm')}"
    return (f"written by transformers {produced.get(package)} (timm {produced.get('timm')}), "
            f"read by transformers {consumed.get(package)} (timm {consumed.get('timm')})")


def _message(ev: Evidence) -> str:
    return ev.exception["message"] if ev.exception else ""


def _tampered(ev: Evidence) -> str | None:
    if ev.extra.get("stage") != "verify" or "sha256 mismatch" not in _message(ev):
        return None
    return f"{ev.extra.get('artifact')}: {_message(ev).splitlines()[0]}"


def _missing_attribute(ev: Evidence) -> str | None:
    # Only a whole pickled object can lack an attribute its class's __init__ now sets.
    if ev.extra.get("kind") != "pickle" or not ev.exception or ev.exception["type"] != "AttributeError":
        return None
    m = _NO_ATTRIBUTE.search(_message(ev))
    if not m:
        return None
    where = ev.exception.get("where") or "?"
    return f"{m.group(1)}.{m.group(2)} ({ev.extra.get('artifact')}, {_releases(ev)}; raised at {where})"


def _class_moved(ev: Evidence) -> str | None:
    if ev.extra.get("stage") != "load" or not ev.exception:
        return None
    text = _message(ev)
    if m := _CANT_GET.search(text):
        return f"{m.group(2)}.{m.group(1)} is gone ({ev.extra.get('artifact')}, {_releases(ev)})"
    if ev.exception["type"] in ("ModuleNotFoundError", "ImportError") and (m := _NO_MODULE.search(text)):
        return f"module {m.group(1)} is gone ({ev.extra.get('artifact')}, {_releases(ev)})"
    return None


def _output_mismatch(ev: Evidence) -> str | None:
    out = ev.output
    if not ev.extra or out is None or out.get("ok"):
        return None
    # Tensors that differ already have their own name; this one is "same weights, other numbers".
    if ev.missing_keys or ev.unexpected_keys or ev.shape_mismatches or ev.value_mismatches:
        return None
    if out["shape"] != out["expected_shape"]:
        detail = f"output shape {out['shape']}, producer's {out['expected_shape']}"
    else:
        detail = f"max abs error {out['max_error']:.3g} > tolerance {out['tolerance']:.3g}"
    return f"{detail} ({ev.extra.get('artifact')}, {_releases(ev)})"


LEGACY_SIGNATURES: tuple[Signature, ...] = (
    Signature("legacy-artifact-tampered", "a legacy artifact's sha256 differs from the manifest; it was not loaded",
              "regenerate it with the manifest's command, or restore the committed file", _tampered),
    Signature("missing-attribute-after-unpickle",
              "an object pickled by an older release lacks an attribute today's code reads",
              "read new attributes with getattr(self, name, default), or set them in __setstate__",
              _missing_attribute),
    Signature("class-moved-or-renamed", "unpickling cannot find a class or module the older release pickled",
              "keep an alias at the old import path", _class_moved),
    Signature("legacy-output-mismatch",
              "the legacy artifact loads with the producer's exact tensors but computes a different output",
              "forward code or non-persistent state changed between the releases", _output_mismatch),
)
