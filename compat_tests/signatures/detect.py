"""What a signature is, and the small pieces its detector is built from.

A detector reads only an `Evidence` (never a live object), so a recorded report can be re-classified later;
it returns a short detail when the evidence matches, else None.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.evidence import Evidence

Detector = Callable[[Evidence], "str | None"]


# A `raised` signature that names where in a load something raised, whatever it was (a catch-all of one path):
# its repro checks that the same type of exception is raised as the cell recorded.
AS_RECORDED = "as recorded"


@dataclass(frozen=True)
class Signature:
    name: str
    explains: str  # one line: what went wrong
    fix: str  # one line: where to look or what to do
    detect: Detector  # a short detail when the evidence matches, else None
    # The loading paths whose cells can show it (their judges record what it reads); () for every path.
    paths: tuple[str, ...] = ()
    # A tool's known limit (an exporter that cannot handle an architecture), not a loading failure: the
    # runner records such cells as skipped, keeping signature, message, evidence and repro.
    limitation: bool = False
    # Seen in tensor values or outputs, which a structural (meta-device) cell lacks, so its passing there is no sign
    # the failure is gone (silent-reinit shows on meta only where a path loads into a build: `Evidence.unwritten`).
    needs_values: bool = False
    # What a repro of it checks (repro/templates.signature_holds): keys, values, buffers, outputs, raised,
    # adapted or process; and for `raised`, the exception's type (None: any) and the pattern its message has (for
    # `buffers`, what torch raises when a computation meets a buffer left without data, as its detector reads).
    family: str = "any"
    raises: tuple[str | None, str] | None = None

    def scoped_to(self, path: str | None) -> bool:
        return not self.paths or path in self.paths


def some(keys: list[str], n: int = 3) -> str:
    """The first `n` of `keys`, and how many more there are."""
    head = ", ".join(keys[:n])
    return head + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def raised(pattern: str, type_name: str | None = None) -> Callable[[Evidence], re.Match | None]:
    """A matcher for evidence whose exception (of `type_name`, when given) has `pattern` in its message."""
    compiled = re.compile(pattern)

    def match(ev: Evidence) -> re.Match | None:
        if not ev.exception or (type_name and ev.exception["type"] != type_name):
            return None
        return compiled.search(ev.exception["message"])

    return match


def message(ev: Evidence) -> str:
    return ev.exception["message"] if ev.exception else ""


def output_detail(out: dict[str, Any] | None, reference: str = "expected") -> str | None:
    """How a recorded output comparison failed (shape, or error beyond its tolerance and where it began),
    None when it passed or no forward ran. `reference` names what the output was compared with."""
    if out is None or out.get("ok"):
        return None
    if out["shape"] != out["expected_shape"]:
        return f"output shape {out['shape']}, {reference} {out['expected_shape']}"
    detail = f"max abs error {out['max_error']:.3g} > tolerance {out['tolerance']:.3g}"
    if "scale" in out:  # compared relative to the output's own scale (fused and exported models)
        detail += f" ({out.get('rtol', 0):.0e} x output scale {out['scale']:.3g})"
    if first := out.get("first_divergence"):
        detail += f"; first diverges at {first['module']} (off by {first['relative']:.2g} of its output)"
    return detail
