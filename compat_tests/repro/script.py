"""Standalone repro scripts: the exact functions a cell ran, pasted into one file with only
torch/timm/transformers/safetensors imports, so a maintainer can run it in a plain Python shell.

A repro of a failure also checks the one fact its signature names, read the way that signature's detector reads
a cell's evidence, and ends with the verdict (`templates.EXPECT`). The checks go by family of signatures
(`FAMILIES`): the keys a load got wrong, the tensor values, the computed buffers, the outputs, what was raised,
what an adapted load should have transformed, and a process that died or hung.
"""

from __future__ import annotations

import functools
import inspect
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from ..judge.expected import rightly_fresh
from ..judge.oracle import (
    OUTPUT_RTOL,
    compare_outputs,
    diff_state,
    diff_structure,
    module_differences,
    unwritten,
)
from ..paths.base import LoadingPath
from ..signatures.catalog import BY_NAME, CATALOG
from ..signatures.detect import AS_RECORDED
from ..signatures.loads import KNOWN_PREFIXES
from ..source.models import BATCH, make_input, nonpersistent_buffers, perturb_
from .templates import (
    CHECK,
    CHECK_META,
    CONCLUDE,
    ENVIRONMENT,
    EXPECT,
    IMPORTS,
    NO_VERDICT,
    OBSERVE,
    PREPARE,
    PREPARE_META,
    WATCH,
    CopyTargets,
    adapted_misses,
    announce,
    key_renames,
    keys_seen,
    left_at_init,
    signature_holds,
    verdict_hook,
    watch_in_child,
)

# The catalog's signatures by what their repro checks (each entry's `family`; templates.signature_holds reads
# each family), and what a raised one's exception is and says (the pattern its detector matches).
FAMILIES: dict[str, tuple[str, ...]] = {
    family: tuple(s.name for s in CATALOG if s.family == family) for family in dict.fromkeys(s.family for s in CATALOG)
}
RAISED: dict[str, tuple[str | None, str]] = {s.name: s.raises for s in CATALOG if s.raises}

# A process-family repro watches the cell for this long unless told otherwise (`python repro.py SECONDS`).
PROCESS_LIMIT_S = 600.0


def expectation(signature: str, raised_type: str | None = None) -> dict[str, Any]:
    """What the repro of a failure named `signature` checks: its family, and what that family needs to know
    (the exception's type and telling message, the wrapper prefixes, whether the unfused model exports).
    `raised_type` is the exception the cell recorded, for a signature that names where a load raised rather
    than what (`AS_RECORDED`)."""
    known = BY_NAME.get(signature)
    family = known.family if known else None
    expected: dict[str, Any] = {"signature": signature, "family": family or "any"}
    if signature.startswith("exception:"):  # not yet named: the same exception type is the fact
        expected.update(family="raised", type=signature.partition(":")[2], pattern="")
    elif family == "raised" and signature.startswith("export-"):
        # The exporter raised; broken-by-reparam when the unfused model exports, unsupported when it fails too.
        expected.update(type=None, pattern="", unfused="exports" if "broken-by-reparam" in signature else "fails")
    elif family == "raised":
        expected["type"], expected["pattern"] = RAISED[signature]
        if expected["type"] == AS_RECORDED:
            expected["type"] = raised_type or AS_RECORDED
    elif family == "buffers" and signature in RAISED:  # or the model raised on a buffer left without data
        expected["type"], expected["pattern"] = RAISED[signature]
    elif family == "keys":  # a rename is told from a wrapper prefix by the prefixes the suite knows
        expected["prefixes"] = list(KNOWN_PREFIXES)
    return expected


@functools.cache  # every failing cell's script embeds the same helpers: read them once
def _source_of(obj: Any) -> str:
    return textwrap.dedent(inspect.getsource(obj)).strip() + "\n"


def script(
    scenario_id: str,
    path: LoadingPath,
    spec: dict[str, Any],
    input_size: tuple[int, ...],
    versions: dict[str, Any],
    meta: bool = False,
    meta_device: str = "meta",
    signature: str | None = None,
    workarounds: Sequence[Callable[[], Any]] = (),
    raised_type: str | None = None,
) -> str:
    """A runnable Python script reproducing one cell (on the meta device for a structural cell). With the
    `signature` the cell's failure was named, the script checks that fact and its last line says whether it
    holds; without one (a repro generated for a cell with no recorded failure) it checks the load as a whole.
    A failure found behind known ones (paths/support/workarounds.py) is reproduced with their `workarounds`
    applied first, in order, as the cell ran it. A structural cell whose release's constructors read values a meta
    tensor lacks (`meta_device="cpu"`) is reproduced with real builds: the structure it checks is the same."""
    pinned = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    expected = expectation(signature, raised_type) if signature else None
    process = expected is not None and expected["family"] == "process"
    recorded = (f"\n\nRecorded failure: {signature}; the output's last line says whether it happens here "
                "(exit status 1 when it does).") if signature else ""
    parts = [f'"""Repro for {scenario_id} ({path.summary}).\n\nRecorded with {pinned}. '
             f'Run: python repro.py{" [SECONDS]" if process else ""}{recorded}"""']
    verdict = (keys_seen, key_renames, adapted_misses, signature_holds, announce, verdict_hook) if expected else ()
    if process:  # the watching process needs only the verdict, not torch
        parts += [ENVIRONMENT, *(_source_of(obj) for obj in (*verdict, watch_in_child)),
                  EXPECT.format(expected=expected) + "\n" + WATCH.format(limit_s=PROCESS_LIMIT_S), IMPORTS]
    else:
        parts.append(ENVIRONMENT + IMPORTS)
    seen: set[str] = {obj.__name__ for obj in verdict} if process else set()
    shared = (perturb_, diff_structure, CopyTargets, unwritten, rightly_fresh) if meta else \
        (perturb_, make_input, diff_state, compare_outputs, nonpersistent_buffers, left_at_init, module_differences)
    # A path with its own repro body calls its own helpers (its roundtrip reads the suite's inputs).
    own = () if path.check.repro else (path.roundtrip,)
    for obj in (*shared, *path.check.helpers, *path.helpers, *own, *verdict):
        if obj.__name__ not in seen:
            seen.add(obj.__name__)
            parts.append(_source_of(obj))
    for workaround in workarounds:
        parts += [_source_of(workaround), f"{workaround.__name__}()  # the fix users apply by hand, applied as the "
                                          "cell applied it: what fails is what lies behind the known failure"]
    if expected is None:
        parts.append(NO_VERDICT)
    else:
        parts.append(("" if process else EXPECT.format(expected=expected) + "\n") + OBSERVE)
    fields = {"spec": spec, "input_size": tuple(input_size), "batch": BATCH, "roundtrip": path.roundtrip.__name__,
              "rtol": OUTPUT_RTOL, "device": meta_device, "conclude": CONCLUDE if expected else "",
              "into_build": path.loads_into_build}
    if path.check.repro:
        parts.append(path.check.repro.format(**fields))
    elif meta:
        parts.append(PREPARE_META.format(**fields) + CHECK_META.format(**fields))
    else:
        parts.append((path.check.repro_prepare or PREPARE).format(**fields) + CHECK.format(**fields))
    return "\n\n".join(parts)
