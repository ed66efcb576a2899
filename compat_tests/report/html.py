"""The single-file HTML report: a models x paths(+overrides) matrix coloured by status, filterable by
family, path, status and signature; clicking a cell shows its message, versions and repro script."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.result import STATUSES, Result
from ..paths import path_order
from ..run.tiers import family_of
from ..signatures.catalog import BY_NAME
from .html_page import CSS, HTML, JS
from .summary import versions_of


def _path_order(records: Sequence[Result]) -> list[str]:
    """Loading paths in their declared order where this checkout knows them, then any others (a report from
    another checkout) by name."""
    known = path_order()
    present = {r.path for r in records}
    return [p for p in known if p in present] + sorted(present - set(known))


def _json_safe(value: Any) -> Any:
    """NaN and infinities as strings: reports hold them (a NaN output error), and JSON.parse rejects them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def render(records: Sequence[Result], title: str = "timm-compat report") -> str:
    data = {
        "records": [r.__dict__ for r in records],
        "paths": _path_order(records),
        "statuses": list(STATUSES),
        "family": {m: family_of(m) for m in sorted({r.model for r in records})},
        "signatures": {s.name: {"explains": s.explains, "fix": s.fix} for s in BY_NAME.values()},
    }
    # '<' escaped so no string in the data (a message, a repro) can close the script element early.
    payload = json.dumps(_json_safe(data), default=str, sort_keys=True, allow_nan=False).replace("<", "\\u003c")
    counts = Counter(r.status for r in records)
    return HTML.format(
        title=html.escape(title),
        versions=html.escape("; ".join(versions_of(records)) or "no records"),
        counts=" ".join(f"<span>{s} <b>{counts.get(s, 0)}</b></span>" for s in STATUSES),
        legend=" ".join(f'<span style="background: var(--{s})">{s}</span>' for s in STATUSES),
        css=CSS,
        data=payload,
        js=JS,
    )


def write(path: Path, records: Sequence[Result], title: str = "timm-compat report") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, title), encoding="utf-8")
    return path
