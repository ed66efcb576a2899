"""The single-file HTML report: a models x loading-paths matrix coloured by each cell's worst status, a path's
column expanding into one column per override, filters that hide the rows and columns they leave empty, and
a details pane with a cell's message, versions, evidence and the command that prints its repro script."""

from __future__ import annotations

import html
import json
import math
import re
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.result import FAILING, STATUSES, Result
from ..core.scenario import META_SUFFIX
from ..paths import path_order
from ..run.tiers import family_of
from ..signatures.catalog import BY_NAME
from . import cross_version
from .cross_version import WORST_FIRST  # a collapsed path cell shows the worst of its overrides in this order
from .html_page import CROSS_FILTERS, CROSS_TABLE, CSS, HTML, JS, TABS
from .summary import versions_of

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


# A hex digest (a snapshot's sha256) is shown the way git shows commits; the JSONL keeps it whole.
_DIGEST = re.compile(r"[0-9a-f]{40,}")
_SHORT_DIGEST = 12


class _Pairs:
    """Key-value pairs that many records repeat in their evidence's `extra` and their override kwargs (the
    releases that wrote a file, the versions on both sides, the loader): each stored once, a record naming it
    by index. A cross-version run writes ~10 records per architecture whose `extra` differs mostly in which of
    these pairs it holds. A pair only one record has stays inline."""

    def __init__(self, fields: Sequence[dict[str, Any]]) -> None:
        self._seen = Counter(self._key(k, v) for d in fields for k, v in d.items())
        self.table = _Table()

    @staticmethod
    def _key(name: str, value: Any) -> str:
        return json.dumps([name, value], sort_keys=True, default=str)

    def split(self, fields: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """(the pairs kept inline, the indices of the shared ones)."""
        inline: dict[str, Any] = {}
        shared: list[int] = []
        for name, value in fields.items():
            if self._seen[self._key(name, value)] > 1:
                shared.append(self.table.index([name, value]))
            else:
                inline[name] = value
        return inline, shared


def _kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Override kwargs as the details pane shows them: digests abbreviated."""
    return {k: v[:_SHORT_DIGEST] + "…" if isinstance(v, str) and _DIGEST.fullmatch(v) else v for k, v in kwargs.items()}


@dataclass
class _Tables:
    versions: _Table = field(default_factory=_Table)
    runs: _Table = field(default_factory=_Table)
    known: _Table = field(default_factory=_Table)
    # Model, path and override names: each is repeated by every record of its row or column.
    names: _Table = field(default_factory=_Table)


def _compact(r: Result, evidence: dict[str, Any], tables: _Tables, pairs: _Pairs) -> dict[str, Any]:
    """One record as the page needs it (`evidence` already shortened): no repro script (the page names the command
    that prints it), an id only where it is not model-path-override, shared values by index, empty fields left
    out."""
    names = tables.names
    row: dict[str, Any] = {"model": names.index(r.model), "path": names.index(r.path),
                           "override": names.index(r.override), "status": r.status,
                           "versions": tables.versions.index(r.versions), "run": tables.runs.index(r.run_id)}
    base = f"{r.model}-{r.path}-{r.override}"
    if r.id == base + META_SUFFIX:
        row["meta"] = 1  # structural cells are thousands: their id is rebuilt rather than stored
    elif r.id != base:
        row["id"] = r.id
    extra, extra_shared = pairs.split(evidence.get("extra") or {})
    evidence = {k: v for k, v in {**evidence, "extra": extra}.items() if v}
    kwargs, kwargs_shared = pairs.split(_kwargs(r.override_kwargs))
    optional = {"signature": r.signature or None, "message": r.message or None, "duration_s": r.duration_s or None,
                "override_kwargs": kwargs or None, "kwargs_shared": kwargs_shared or None,
                "evidence": evidence or None, "extra_shared": extra_shared or None,
                "has_repro": True if r.repro else None, "known": tables.known.index(r.known) if r.known else None,
                "behind": {k: v for k, v in r.behind.items() if k != "message"} or None}
    row.update({k: v for k, v in optional.items() if v is not None})
    return row


# A cross-version cell's status as one character of its row's string (an index into WORST_FIRST), "." where the
# release wrote no file for the architecture: 1,400 rows x 11 releases stay a few hundred kilobytes.
_NO_CELL = "."


def _cross_version(records: Sequence[Result], matrix: cross_version.Matrix) -> dict[str, Any]:
    """The cross-version tab's data for `matrix`, built from `records`. Each row is [architecture,
    pretrained tags, one status character per release, [record index, kind index, release index...] for each
    record behind its cells]; the records themselves are the page's `records`, so no message is stored twice."""
    at = {id(r): i for i, r in enumerate(records)}
    kinds = cross_version.kinds_of(cross_version.records_of(records))  # as the Markdown names them
    rows = []
    for row in matrix.rows:
        covers: dict[int, list[int]] = {}
        for j, producer in enumerate(matrix.producers):
            for r in row.cells[producer].records if producer in row.cells else ():
                i = at[id(r)]
                covers.setdefault(i, [i, kinds.index(cross_version.origin(r)[0])]).append(j)
        statuses = "".join(str(cross_version.rank(row.cells[p].status)) if p in row.cells else _NO_CELL
                           for p in matrix.producers)
        rows.append([row.model, row.pretrained_tags, statuses, list(covers.values())])
    return {"producers": matrix.producers, "kinds": kinds, "rows": rows, "failing": list(FAILING)}


def render(records: Sequence[Result], title: str = "timm-compat report", report: str | Path | None = None) -> str:
    """The page. `report` names the JSONL file (or folder) the records came from, for the repro command the
    details pane shows (default: reports/)."""
    tables = _Tables()
    evidences = [_evidence(r.evidence or {}) for r in records]
    pairs = _Pairs([e.get("extra") or {} for e in evidences] + [_kwargs(r.override_kwargs) for r in records])
    matrix = cross_version.build(records)
    cross = _cross_version(records, matrix) if matrix.rows else None
    data = {
        "records": [_compact(r, e, tables, pairs) for r, e in zip(records, evidences, strict=True)],
        "pairs": pairs.table.values,
        "names": tables.names.values,
        "versions": tables.versions.values,
        "runs": tables.runs.values,
        "known": tables.known.values,
        "paths": _path_order(records),
        "statuses": list(STATUSES),
        "worst_first": list(WORST_FIRST),
        "groups": [{"label": label, "statuses": list(statuses)} for label, statuses in ROW_GROUPS],
        "family": {m: family_of(m) for m in sorted({r.model for r in records})},
        "signatures": {s.name: {"explains": s.explains, "fix": s.fix} for s in BY_NAME.values()},
        "report": shlex.quote(str(report)) if report is not None else DEFAULT_REPORT,
        "cross_version": cross,
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
        tabs=TABS.format(failing=matrix.totals().failing_architectures) if cross else "",
        cross_filters=CROSS_FILTERS.format(total=html.escape(cross_version.total_line(matrix))) if cross else "",
        cross_table=CROSS_TABLE if cross else "",
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

