"""The single-file HTML report: a models x loading-paths matrix coloured by each cell's worst status, a path's
column expanding into one column per override, filters that hide the rows and columns they leave empty, and
a details pane with a cell's message, versions, evidence and the command that prints its repro script."""

from __future__ import annotations

import html
import json
import math
import shlex
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

# A collapsed path cell shows the worst of its overrides, worst first: a new failure or a cell that could not
# run makes the run red, so either must show through a path's column; `xpassed` asks for an action (remove the
# baseline entry) where `xfailed` is a break already known; `skipped` checked nothing, so a path that passed
# anywhere shows as passed.
WORST_FIRST = ("failed", "error", "xpassed", "xfailed", "passed", "skipped")
# Rows come in these groups, each alphabetical, by the worst status among all of a model's cells.
ROW_GROUPS = (("new failures", ("failed", "error")), ("fixed upstream (xpassed)", ("xpassed",)),
              ("known failures", ("xfailed",)), ("clean", ("passed", "skipped")))
# Evidence is embedded for the details pane only (signatures are derived before rendering), so its long
# exception texts and key lists are cut: its counts stay exact, and the JSONL report keeps everything.
MAX_EVIDENCE_TEXT = 500
MAX_EVIDENCE_ITEMS = 16
DEFAULT_REPORT = "reports/"


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


def _shortened(value: Any) -> Any:
    """Evidence without its empty fields, with long strings and lists cut (a cut list says how long it was)."""
    if isinstance(value, dict):
        kept = {k: _shortened(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, (list, tuple)):
        items = [_shortened(v) for v in value[:MAX_EVIDENCE_ITEMS]]
        return items + [f"... {len(value) - MAX_EVIDENCE_ITEMS} more"] if len(value) > MAX_EVIDENCE_ITEMS else items
    if isinstance(value, str) and len(value) > MAX_EVIDENCE_TEXT:
        return value[:MAX_EVIDENCE_TEXT] + f"... ({len(value) - MAX_EVIDENCE_TEXT} more characters)"
    return value


def _evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    shortened = _shortened(evidence)
    if not isinstance(shortened.get("counts"), dict):
        return shortened
    # A zero count only restates an empty list left out above.
    counts = {k: v for k, v in shortened.pop("counts").items() if v}
    return {**shortened, "counts": counts} if counts else shortened


class _Table:
    """Values many records share (versions, run ids, baseline entries with their long reasons), stored once."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._index: dict[str, int] = {}

    def index(self, value: Any) -> int:
        key = json.dumps(value, sort_keys=True, default=str)
        if key not in self._index:
            self._index[key] = len(self.values)
            self.values.append(value)
        return self._index[key]


def _compact(r: Result, versions: _Table, runs: _Table, known: _Table) -> dict[str, Any]:
    """One record as the page needs it: no repro script (the page names the command that prints it), an id only
    where it is not model-path-override, shared values by index, empty fields left out."""
    row: dict[str, Any] = {"model": r.model, "path": r.path, "override": r.override, "status": r.status,
                           "duration_s": r.duration_s, "versions": versions.index(r.versions),
                           "run": runs.index(r.run_id)}
    if r.id != f"{r.model}-{r.path}-{r.override}":
        row["id"] = r.id
    evidence = _evidence(r.evidence or {})
    optional = {"signature": r.signature or None, "message": r.message or None,
                "override_kwargs": r.override_kwargs or None, "evidence": evidence or None,
                "has_repro": True if r.repro else None, "known": known.index(r.known) if r.known else None,
                "behind": {k: v for k, v in r.behind.items() if k != "message"} or None}
    row.update({k: v for k, v in optional.items() if v is not None})
    return row


def render(records: Sequence[Result], title: str = "timm-compat report", report: str | Path | None = None) -> str:
    """The page. `report` names the JSONL file (or folder) the records came from, for the repro command the
    details pane shows (default: reports/)."""
    versions, runs, known = _Table(), _Table(), _Table()
    data = {
        "records": [_compact(r, versions, runs, known) for r in records],
        "versions": versions.values,
        "runs": runs.values,
        "known": known.values,
        "paths": _path_order(records),
        "statuses": list(STATUSES),
        "worst_first": list(WORST_FIRST),
        "groups": [{"label": label, "statuses": list(statuses)} for label, statuses in ROW_GROUPS],
        "family": {m: family_of(m) for m in sorted({r.model for r in records})},
        "signatures": {s.name: {"explains": s.explains, "fix": s.fix} for s in BY_NAME.values()},
        "report": shlex.quote(str(report)) if report is not None else DEFAULT_REPORT,
    }
    # '<' escaped so no string in the data (a message, an exception) can close the script element early.
    payload = json.dumps(_json_safe(data), default=str, sort_keys=True, allow_nan=False, ensure_ascii=False,
                         separators=(",", ":")).replace("<", "\\u003c")
    counts = Counter(r.status for r in records)
    return HTML.format(
        title=html.escape(title),
        versions=html.escape("; ".join(versions_of(records)) or "no records"),
        counts=" ".join(f"<span>{s} <b>{counts.get(s, 0)}</b></span>" for s in STATUSES),
        legend=" ".join(f'<span style="background: var(--{s})">{s}</span>' for s in WORST_FIRST),
        css=CSS,
        data=payload,
        js=JS,
    )


def write(path: Path, records: Sequence[Result], title: str = "timm-compat report",
          report: str | Path | None = None) -> Path:
    """Write the page to `path`; `report` as for render (the CLI may pass the JSONL it read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, title, report), encoding="utf-8")
    return path

