"""Failure signatures as data: a stable name, how it is recognised in the evidence, and what it means.

Each signature's `detect` reads only an `Evidence`, so a recorded report can be re-classified later.
The registry is ordered: the first, most specific, match names the failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .evidence import Evidence

# Prefixes that wrappers add to a timm model's keys (DDP, transformers' wrapper, torch.compile, trainers).
KNOWN_PREFIXES = ("module.", "timm_model.", "_orig_mod.", "model.", "vision_tower.", "visual.trunk.")
# transformers' legacy key renames (<= 4.48): any key containing gamma/beta.
LEGACY_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))


@dataclass(frozen=True)
class Signature:
    name: str
    explains: str  # one line: what went wrong
    fix: str  # one line: where to look or what to do
    detect: Callable[[Evidence], str | None]  # a short detail when the evidence matches, else None


def _some(keys: list[str], n: int = 3) -> str:
    head = ", ".join(keys[:n])
    return head + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _exception_matching(pattern: str, type_name: str | None = None) -> Callable[[Evidence], re.Match | None]:
    compiled = re.compile(pattern)

    def match(ev: Evidence) -> re.Match | None:
        if not ev.exception or (type_name and ev.exception["type"] != type_name):
            return None
        return compiled.search(ev.exception["message"])

    return match


_multiple_values = _exception_matching(r"got multiple values for (?:keyword )?argument '(\w+)'", "TypeError")


def _kwarg_conflict(ev: Evidence) -> str | None:
    m = _multiple_values(ev)
    if not m:
        return None
    where = ev.exception.get("where") if ev.exception else ""
    return f"argument {m.group(1)!r} was given twice (raised at {where})"


def _gamma_renamed(ev: Evidence) -> str | None:
    unexpected = set(ev.unexpected_keys)
    pairs = [
        (k, k[: -len(old)] + new)
        for k in ev.missing_keys
        for old, new in LEGACY_RENAMES
        if k.endswith(old) and k[: -len(old)] + new in unexpected
    ]
    if not pairs:
        return None
    return f"{len(pairs)} key(s) renamed, e.g. {pairs[0][0]} -> {pairs[0][1]}"


def _prefix_mismatch(ev: Evidence) -> str | None:
    if not ev.missing_keys or len(ev.missing_keys) != len(ev.unexpected_keys):
        return None
    missing, unexpected = set(ev.missing_keys), set(ev.unexpected_keys)
    for prefix in KNOWN_PREFIXES:
        if {prefix + k for k in missing} == unexpected:
            return f"checkpoint keys carry an extra prefix {prefix!r}"
        if {prefix + k for k in unexpected} == missing:
            return f"checkpoint keys lack the prefix {prefix!r}"
    return None


def _shape_mismatch(ev: Evidence) -> str | None:
    if not ev.shape_mismatches:
        return None
    key, want, got = ev.shape_mismatches[0]
    more = f" (+{len(ev.shape_mismatches) - 1} more)" if len(ev.shape_mismatches) > 1 else ""
    return f"{key}: expected {want}, loaded {got}{more}"


def _missing(ev: Evidence) -> str | None:
    return f"{len(ev.missing_keys)} missing: {_some(ev.missing_keys)}" if ev.missing_keys else None


def _unexpected(ev: Evidence) -> str | None:
    return f"{len(ev.unexpected_keys)} unexpected: {_some(ev.unexpected_keys)}" if ev.unexpected_keys else None


def _dtype_changed(ev: Evidence) -> str | None:
    if not ev.dtype_mismatches:
        return None
    key, want, got = ev.dtype_mismatches[0]
    return f"{key}: saved {want}, loaded {got} ({len(ev.dtype_mismatches)} tensors)"


def _buffer_not_rebuilt(ev: Evidence) -> str | None:
    if not ev.buffer_mismatches:
        return None
    return f"{len(ev.buffer_mismatches)} differ, e.g. {_some(ev.buffer_mismatches)}"


def _silent_reinit(ev: Evidence) -> str | None:
    if not ev.at_init or ev.missing_keys:
        return None
    return f"{len(ev.at_init)} tensor(s) still hold their initial value: {_some(ev.at_init)}"


def _tensor_mismatch(ev: Evidence) -> str | None:
    if not ev.value_mismatches:
        return None
    key, diff = max(ev.value_mismatches, key=lambda kv: kv[1])
    return f"{len(ev.value_mismatches)} tensor(s) differ from the source, worst {key} (max abs diff {diff:.3g})"


def _output_mismatch(ev: Evidence) -> str | None:
    out = ev.output
    if out is None or out.get("ok"):
        return None
    if out["shape"] != out["expected_shape"]:
        return f"output shape {out['shape']}, expected {out['expected_shape']}"
    return f"max abs error {out['max_error']:.3g} > tolerance {out['tolerance']:.3g}"


REGISTRY: tuple[Signature, ...] = (
    Signature("kwarg-conflict", "the loader passed the same argument to the model constructor twice",
              "drop the argument from one source (saved config model_args or the loader's own)", _kwarg_conflict),
    Signature("layerscale-gamma-renamed", "keys ending in .gamma/.beta were renamed to .weight/.bias on load",
              "transformers' legacy gamma->weight rename (<=4.48): upgrade, or rename the keys back",
              _gamma_renamed),
    Signature("key-prefix-mismatch", "every key differs from the model's by one wrapper prefix",
              "strip or add the prefix before load_state_dict", _prefix_mismatch),
    Signature("shape-mismatch", "a checkpoint tensor has a different shape than the model's",
              "check the model arguments the checkpoint was saved with", _shape_mismatch),
    Signature("missing-keys", "the model has keys the checkpoint lacks", "compare the key sets", _missing),
    Signature("unexpected-keys", "the checkpoint has keys the model lacks", "compare the key sets", _unexpected),
    Signature("dtype-changed", "a loaded tensor's dtype differs from the saved one",
              "check the loader's dtype defaults", _dtype_changed),
    Signature("nonpersistent-buffer-not-rebuilt",
              "buffers the model computes in __init__ (not saved) hold other values after loading",
              "the loader built the model without running its init (meta device); recompute these buffers",
              _buffer_not_rebuilt),
    Signature("silent-reinit", "the load reported success but tensors kept their fresh initial values",
              "a loader skipped or renamed these keys without reporting them", _silent_reinit),
    Signature("tensor-mismatch", "loaded tensors differ from the saved ones",
              "a loader transformed values it should have copied", _tensor_mismatch),
    Signature("output-mismatch", "weights match but outputs differ from the source model's",
              "non-persistent state or forward code differs between saved and loaded model", _output_mismatch),
)

BY_NAME = {s.name: s for s in REGISTRY}


def classify(ev: Evidence, first: tuple[Signature, ...] = ()) -> tuple[str, str]:
    """(signature, one-line message) for failing evidence; `first` (a path's own signatures) win."""
    for signature in (*first, *REGISTRY):
        detail = signature.detect(ev)
        if detail:
            return signature.name, f"{signature.explains}: {detail}"
    if ev.exception:
        first_line = (ev.exception["message"].strip().splitlines() or [""])[0][:300]
        where = f" at {ev.exception['where']}" if ev.exception.get("where") else ""
        return f"exception:{ev.exception['type']}", f"{ev.exception['type']}: {first_line}{where}"
    return "unclassified", "the oracle flagged this load but no signature matches the evidence"


def needs_signature(name: str) -> bool:
    """Failures still named only by their exception type: candidates for a new registry entry."""
    return name.startswith("exception:") or name == "unclassified"
