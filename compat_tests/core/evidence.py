"""Evidence: what a cell observed, in plain JSON-able data, so causes can be re-derived from a report."""

from __future__ import annotations

import linecache
import os
import re
import sys
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

# Lists are capped in the report; counts stay exact.
MAX_LISTED = 64
# Key lists are what a recorded failure is re-classified from (a prefix, a systematic rename, gamma -> weight),
# and a cut list can read as another cause: kept whole up to a size no architecture's state dict reaches.
MAX_KEYS = 8192


class NotApplicable(Exception):
    """Raised by a judge that learns only while judging that the cell cannot apply (a normal build with
    the override cannot run at all, so no load is at fault); the runner skips the cell with the message."""


def said(error: BaseException) -> str:
    """One line naming what a library raised; a bare `assert` in timm has no message at all."""
    return f"{type(error).__name__}: {(str(error).splitlines() or ['(no message)'])[0][:160]}"


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
    # on meta, where no value shows it: keys of a model built to be loaded into that the load never wrote
    unwritten: list[str] = field(default_factory=list)
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
            or self.unwritten
            or self.buffer_mismatches
            or self.exception
            or self.extra_failure
            or (self.output is not None and not self.output.get("ok", False))
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("missing_keys", "unexpected_keys", "shape_mismatches", "dtype_mismatches",
                    "value_mismatches", "at_init", "unwritten", "buffer_mismatches"):
            data["counts"][key] = len(data[key])
            data[key] = data[key][:MAX_KEYS if key.endswith("_keys") else MAX_LISTED]
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


def _importable(filename: str) -> str:
    """`filename` from its package on: what follows the sys.path entry it was imported from, so a release overlaid
    with `pip install --target DIR` (on PYTHONPATH, as bisect runs them) reads as site-packages' does and baseline
    messages such as '*at timm/models/_hub.py*' match either way."""
    for root in sorted(filter(None, sys.path), key=len, reverse=True):  # site-packages before a folder holding it
        prefix = root.rstrip("/" + os.sep) + os.sep
        if filename.startswith(prefix):
            return filename[len(prefix):]
    return filename.rsplit("site-packages/", 1)[-1]


def _frame(frame: traceback.FrameSummary) -> str:
    return f"{_importable(frame.filename)}:{frame.lineno} in {frame.name}"


def _where(frames: traceback.StackSummary) -> str:
    """The innermost library frame that raised, as 'file.py:line in function'."""
    for frame in reversed(frames):
        if "compat_tests" not in frame.filename:
            return _frame(frame)
    return ""


def _building(frames: traceback.StackSummary) -> str:
    """When the exception was raised while timm built a model (under its `build_model_with_cfg`, whoever called
    create_model), the innermost timm frame, as 'file.py:line in function'; else ''. A loader's build and the
    forward that follows it can raise the same torch error for different causes."""
    start = next((i for i, f in enumerate(frames) if f.name == "build_model_with_cfg"
                  and f.filename.replace("\\", "/").endswith("timm/models/_builder.py")), None)
    if start is None:
        return ""
    inside = [f for f in frames[start:] if "/timm/" in f.filename.replace("\\", "/")]
    return _frame(inside[-1])


def _custom_load(frames: traceback.StackSummary) -> str:
    """When timm's `load_pretrained` handed the file to the model's own `load_pretrained` (a pretrained config with
    `custom_load`: the model reads its original format, such as big_vision's .npz) and that raised, the model's
    frame, as 'file.py:line in function'; else ''."""
    names = [(f.name, f.filename.replace("\\", "/")) for f in frames]
    for i, (name, filename) in enumerate(names[:-1]):
        if name == "load_pretrained" and filename.endswith("timm/models/_builder.py"):
            inner, inner_file = names[i + 1]
            if inner == "load_pretrained" and "/timm/" in inner_file and not inner_file.endswith("_builder.py"):
                return _frame(frames[i + 1])
    return ""


def from_exception(error: BaseException) -> Evidence:
    """Evidence from an exception, reading the key lists torch's strict load_state_dict puts in its text."""
    text = str(error)
    frames = traceback.extract_tb(error.__traceback__)
    evidence = Evidence(exception={"type": type(error).__name__, "message": text[:2000], "where": _where(frames)})
    for line in text.splitlines():
        if m := _MISSING.search(line):
            evidence.missing_keys += _QUOTED.findall(m.group(1))
        elif m := _UNEXPECTED.search(line):
            evidence.unexpected_keys += _QUOTED.findall(m.group(1))
    for key, src, dst in _SIZE.findall(text):
        evidence.shape_mismatches.append((key, _shape(src), _shape(dst)))
    if building := _building(frames):
        evidence.extra["raised_building"] = building
    if custom := _custom_load(frames):
        evidence.extra["raised_in_custom_load"] = custom
    if sources := kwarg_sources(error):
        # Where each value of a doubled argument came from, read off the live frame while it exists.
        evidence.extra["kwarg_sources"] = sources
    return evidence


# torch and Python word a doubled keyword argument like this; the kwarg-conflict signature reads it too.
MULTIPLE_VALUES = r"got multiple values for (?:keyword )?argument '(\w+)'"


def _statement(filename: str, lineno: int, limit: int = 6) -> str:
    """The source of the (possibly multi-line) call starting at `lineno`, joined on one line."""
    lines = []
    for n in range(lineno, lineno + limit):
        text = linecache.getline(filename, n)
        if not text:
            break
        lines.append(text.strip())
        joined = " ".join(lines)
        if joined.count("(") <= joined.count(")"):
            break
    return " ".join(lines)


def _origin(frame_locals: dict[str, Any], mapping: dict) -> str:
    """Which attribute of a local object holds `mapping`, e.g. `config.model_args` (a saved config's field)."""
    for name, obj in frame_locals.items():
        for attr, value in (getattr(obj, "__dict__", None) or {}).items():
            if value is mapping:
                is_config = type(obj).__name__.endswith("Config") and hasattr(obj, "to_dict")
                return f"{name}.{attr}" + (f" (the saved config.json field `{attr}`)" if is_config else "")
    return ""


def kwarg_sources(error: BaseException) -> dict[str, str] | None:
    """For 'got multiple values for keyword argument X': the call, and where each of the two values came from.

    Reads the raising frame (a duplicate keyword fails at the call site, before the callee runs): the
    explicit `X=...` in the call's source is the loader's own code; a `**mapping` holding X is the other
    source, traced to the object attribute it came from (a config loaded from the saved config.json).
    Stored in `Evidence.extra["kwarg_sources"]` by `from_exception`, while the frame still exists.
    """
    m = re.search(MULTIPLE_VALUES, str(error))
    if not isinstance(error, TypeError) or not m or error.__traceback__ is None:
        return None
    arg, tb = m.group(1), error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    call = _statement(frame.f_code.co_filename, tb.tb_lineno)
    sources = {"argument": arg, "call": call[:300],
               "where": f"{_importable(frame.f_code.co_filename)}:{tb.tb_lineno}"}
    if explicit := re.search(rf"\b{arg}\s*=\s*([^,)]+)", call):
        sources["explicit"] = f"{arg}={explicit.group(1).strip()} in the loader's code"
    for name in re.findall(r"\*\*\s*([A-Za-z_][\w.]*)", call):
        head, *attrs = name.split(".")
        mapping = frame.f_locals.get(head)
        for attr in attrs:
            mapping = getattr(mapping, attr, None)
        if isinstance(mapping, dict) and arg in mapping:
            origin = _origin(frame.f_locals, mapping)
            sources["expanded"] = f"**{name} holding {arg}={mapping[arg]!r}" + (f", from {origin}" if origin else "")
            break
    return sources
