"""Evidence: what a cell observed, in plain JSON-able data, so causes can be re-derived from a report."""

from __future__ import annotations

import re
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

# Lists are capped in the report; counts stay exact.
MAX_LISTED = 64


@dataclass
class Evidence:
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    # (key, expected shape, loaded shape)
    shape_mismatches: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    # (key, expected dtype, loaded dtype)
    dtype_mismatches: list[tuple[str, str, str]] = field(default_factory=list)
    # (key, max abs difference)
    value_mismatches: list[tuple[str, float]] = field(default_factory=list)
    # keys among value_mismatches whose loaded tensor is still the initialiser's constant
    at_init: list[str] = field(default_factory=list)
    # non-persistent buffers (computed by the model, never saved) whose values differ from a normal build
    buffer_mismatches: list[str] = field(default_factory=list)
    # compare_outputs() result, or None when no forward ran
    output: dict[str, Any] | None = None
    # {"type", "message", "where"} when the save/load/forward raised
    exception: dict[str, str] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # Path-specific observations (JSON-able), read by that path's own signatures.
    extra: dict[str, Any] = field(default_factory=dict)
    # Set by a path's judge when something beyond the fields above makes the load wrong.
    extra_failure: bool = False

    @property
    def clean(self) -> bool:
        return not (
            self.missing_keys
            or self.unexpected_keys
            or self.shape_mismatches
            or self.dtype_mismatches
            or self.value_mismatches
            or self.buffer_mismatches
            or self.exception
            or self.extra_failure
            or (self.output is not None and not self.output.get("ok", False))
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("missing_keys", "unexpected_keys", "shape_mismatches", "dtype_mismatches",
                    "value_mismatches", "at_init", "buffer_mismatches"):
            data["counts"][key] = len(data[key])
            data[key] = data[key][:MAX_LISTED]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


_QUOTED = re.compile(r'"([^"]+)"')
_MISSING = re.compile(r"Missing key\(s\) in state_dict: (.*)")
_UNEXPECTED = re.compile(r"Unexpected key\(s\) in state_dict: (.*)")
_SIZE = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from checkpoint, "
    r"the shape in current model is torch\.Size\(\[([\d, ]*)\]\)"
)


def _shape(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def _where(error: BaseException) -> str:
    """The innermost library frame that raised, as 'file.py:line in function'."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if "compat_tests" not in frame.filename:
            return f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno} in {frame.name}"
    return ""


def from_exception(error: BaseException) -> Evidence:
    """Evidence from an exception, reading the key lists torch's strict load_state_dict puts in its text."""
    text = str(error)
    evidence = Evidence(exception={"type": type(error).__name__, "message": text[:2000], "where": _where(error)})
    for line in text.splitlines():
        if m := _MISSING.search(line):
            evidence.missing_keys += _QUOTED.findall(m.group(1))
        elif m := _UNEXPECTED.search(line):
            evidence.unexpected_keys += _QUOTED.findall(m.group(1))
    for key, src, dst in _SIZE.findall(text):
        evidence.shape_mismatches.append((key, _shape(src), _shape(dst)))
    from .signatures import kwarg_sources  # local: signatures imports this module

    if sources := kwarg_sources(error):
        # Where each value of a doubled argument came from, read off the live frame while it exists.
        evidence.extra["kwarg_sources"] = sources
    return evidence
