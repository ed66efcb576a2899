"""Standalone repro scripts: the exact functions a cell ran, pasted into one file with only
torch/timm/transformers/safetensors imports, so a maintainer can run it in a plain Python shell."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from .oracle import OUTPUT_RTOL, compare_outputs, diff_state, diff_structure
from .paths.base import LoadingPath
from .source import BATCH, make_input, perturb_

# The seeded, perturbed source model exactly as the runner builds it: the start of every PREPARE template.
BUILD_SOURCE = '''
spec = {spec!r}
torch.manual_seed(spec["seed"])
source = timm.create_model(spec["name"], pretrained=False, **spec["source_kwargs"]).eval()
perturb_(source, spec["seed"])'''

# Builds the source, saves and loads it; leaves `x`, `reference`, `expected_state` and `loaded` behind.
# A path whose cells start from something else (a stored artifact) supplies its own (LoadingPath.repro_prepare).
PREPARE = BUILD_SOURCE + '''
x = make_input({input_size!r}, spec["seed"], {batch})
with torch.no_grad():
    reference = source(x)
expected_state = source.state_dict()

loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
'''

_CHECK = '''
report = diff_state(expected_state, loaded["model"].state_dict())
report["reported_missing"] = list(loaded.get("missing_keys") or [])
report["reported_unexpected"] = list(loaded.get("unexpected_keys") or [])
forward = loaded.get("forward") or loaded["model"].eval()
with torch.no_grad():
    output = compare_outputs(reference, forward(x), {rtol})
problems = {{k: v[:10] for k, v in report.items() if v}}
print("problems:", problems)
print("output:", output)
assert not problems and output["ok"], "the load is not faithful to the saved model"
print("OK: loaded faithfully")
'''

# A structural cell: source and load on the meta device (keys, shapes, dtypes; no values). The suite skips
# value initialisers on meta to go faster; plain torch.device("meta") gives the same structure.
PREPARE_META = '''
spec = {spec!r}
with torch.device("meta"):
    source = timm.create_model(spec["name"], pretrained=False, **spec["source_kwargs"]).eval()
    expected_state = source.state_dict()
    loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
'''

# As oracle.judge_structure: a model built with an override defines its own shapes.
_CHECK_META = '''
actual = loaded["model"].state_dict()
overridden = dict(loaded.get("kwargs") or spec["source_kwargs"]) != dict(spec["source_kwargs"])
expected = {{k: v for k, v in expected_state.items() if k in actual}} if overridden else expected_state
report = diff_structure(expected, actual, shapes=not overridden)
if overridden:
    report["unexpected"] = []
report["reported_missing"] = list(loaded.get("missing_keys") or [])
report["reported_unexpected"] = list(loaded.get("unexpected_keys") or [])
problems = {{k: v[:10] for k, v in report.items() if v}}
print("problems:", problems)
assert not problems, "the load does not keep the saved model's keys, shapes and dtypes"
print("OK: keys, shapes and dtypes survive the load")
'''


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
    for obj in (*shared, *path.helpers, path.roundtrip):
        if obj.__name__ not in seen:
            seen.add(obj.__name__)
            parts.append(_source_of(obj))
    fields = {"spec": spec, "input_size": tuple(input_size), "batch": BATCH, "roundtrip": path.roundtrip.__name__,
              "rtol": OUTPUT_RTOL}
    if meta:
        parts.append(PREPARE_META.format(**fields) + _CHECK_META.format(**fields))
    else:
        parts.append((path.repro_prepare or PREPARE).format(**fields) + _CHECK.format(**fields))
    return "\n\n".join(parts)
