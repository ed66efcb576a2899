"""The end-of-run table: scenarios per status, then failures grouped by signature with the models hit."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from .results import STATUSES, Result
from .signatures import BY_NAME, needs_signature


def _models(results: list[Result], limit: int = 8) -> str:
    names = sorted({r.model for r in results})
    head = ", ".join(names[:limit])
    return head + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def render(results: Iterable[Result]) -> list[str]:
    results = list(results)
    if not results:
        return ["no scenarios recorded"]
    counts = Counter(r.status for r in results)
    lines = ["  ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)]
    failing = [r for r in results if r.status in ("failed", "error")]
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in failing:
        groups[r.signature or "unclassified"].append(r)
    # Failures with no named cause yet come first: they are the ones that need a new signature.
    order = sorted(groups, key=lambda s: (not needs_signature(s), -len(groups[s]), s))
    if order:
        lines.append("")
        lines.append("failures by signature:")
    for signature in order:
        group = groups[signature]
        tag = "  [needs a signature]" if needs_signature(signature) else ""
        paths = ", ".join(sorted({r.path for r in group}))
        lines.append(f"  {signature} ({len(group)}){tag}: paths {paths}; models {_models(group)}")
        explains = BY_NAME[signature].explains if signature in BY_NAME else group[0].message
        lines.append(f"      {explains[:160]}")
    return lines
