"""Standalone repro scripts: the exact functions a cell ran, pasted into one file with only
torch/timm/transformers/safetensors imports, so a maintainer can run it in a plain Python shell."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from ..judge.oracle import OUTPUT_RTOL, compare_outputs, diff_state, diff_structure
from ..paths.base import LoadingPath
from ..source.models import BATCH, make_input, perturb_
from .templates import CHECK, CHECK_META, PREPARE, PREPARE_META


def _source_of(obj: Any) -> str:
    return textwrap.dedent(inspect.getsource(obj)).strip() + "\n"


def script(
    scenario_id: str,
    path: LoadingPath,
    spec: dict[str, Any],
    input_size: tuple[int, ...],
    versions: dict[str, Any],
    meta: bool = False,
) -> str:
    """A runnable Python script reproducing one cell (on the meta device for a structural cell)."""
    pinned = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    parts = [
        f'"""Repro for {scenario_id} ({path.summary}).\n\nRecorded with {pinned}. Run: python repro.py"""',
        "import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport tempfile\n\nimport timm\nimport torch\n",
    ]
    seen: set[str] = set()
    shared = (perturb_, diff_structure) if meta else (perturb_, make_input, diff_state, compare_outputs)
    for obj in (*shared, *path.check.helpers, *path.helpers, path.roundtrip):
        if obj.__name__ not in seen:
            seen.add(obj.__name__)
            parts.append(_source_of(obj))
    fields = {"spec": spec, "input_size": tuple(input_size), "batch": BATCH, "roundtrip": path.roundtrip.__name__,
              "rtol": OUTPUT_RTOL}
    if meta:
        parts.append(PREPARE_META.format(**fields) + CHECK_META.format(**fields))
    else:
        parts.append((path.check.repro_prepare or PREPARE).format(**fields) + CHECK.format(**fields))
    return "\n\n".join(parts)
