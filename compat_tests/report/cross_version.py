"""The cross-version matrix: architectures x the releases that wrote their files, from the `cross_version` records.

A record replays one file that one or more releases wrote byte-identically (`evidence.extra.written_by`), so
its result stands for each of them. A matrix cell is the worst status over the kinds of file (state_dict,
headless, hub, pickle, hf_config) that release wrote for the architecture; a release that wrote none has no
cell. Pure functions of the records: the Markdown summary and the HTML page both draw from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..core.result import FAILING, Result
from ..core.scenario import META_SUFFIX

PATH = "cross_version"
# A cell that stands for several records shows the worst of them, worst first: a new failure or a cell that
# could not run makes the run red, so either must show through; `xpassed` asks for an action (remove the
# baseline entry) where `xfailed` is a break already known; `skipped` checked nothing, so a cell that passed
# anywhere shows as passed. The HTML page's collapsed path columns use the same order.
WORST_FIRST = ("failed", "error", "xpassed", "xfailed", "passed", "skipped")
# Producers are named `<package><version>` (timm0.9.16, transformers4.57.x): timm's own releases first (they
# write four of the five kinds), then transformers', each by version, so a row reads oldest to newest.
PACKAGE_ORDER = ("timm", "transformers")
_PRODUCER = re.compile(r"^(?P<package>[A-Za-z_-]*?)(?P<version>\d.*)?$")


def rank(status: str) -> int:
    """Position in WORST_FIRST; a status the order does not know sorts after every known one."""
    return WORST_FIRST.index(status) if status in WORST_FIRST else len(WORST_FIRST)


def producer_key(producer: str) -> tuple:
    """Sort key: timm releases by version, then transformers ones, then any other package by name. Version
    parts compare as numbers, and a wildcard part (`4.57.x`) after every number."""
    match = _PRODUCER.match(producer)
    package, version = (match["package"], match["version"] or "") if match else (producer, "")
    known = PACKAGE_ORDER.index(package) if package in PACKAGE_ORDER else len(PACKAGE_ORDER)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[A-Za-z]+", version))
    return known, package, parts


def origin(r: Result) -> tuple[str, str, list[str]]:
    """(kind, first producer, every producer that wrote the file) of a record. A record skipped before its
    judge ran has no evidence: its override (`<producer>_<kind>`) names the one producer it was for."""
    extra = (r.evidence or {}).get("extra") or {}
    producer, _, kind = r.override.removesuffix(META_SUFFIX).partition("_")
    kind = extra.get("kind") or kind
    producer = extra.get("producer") or producer
    written_by = [str(p) for p in extra.get("written_by") or ()] or [producer]
    return kind, producer, written_by


@dataclass
class Cell:
    """One architecture as one release wrote it: the records behind the cell, worst first."""

    records: list[Result] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.records[0].status

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def failures(self) -> list[tuple[str, str]]:
        """(kind, signature) of each failing record, worst first; a failure with no signature by its status."""
        return [(origin(r)[0], r.signature or r.status) for r in self.records if r.status in FAILING]

    def signatures(self) -> list[str]:
        return list(dict.fromkeys(s for _, s in self.failures()))


@dataclass
class Row:
    model: str
    # Published weights the architecture has (the most any of its records saw); None when no record said.
    pretrained_tags: int | None
    cells: dict[str, Cell]  # producer -> cell; a release that wrote nothing for the model has none

    @property
    def failing(self) -> bool:
        return any(c.failing for c in self.cells.values())


@dataclass
class Totals:
    architectures: int
    releases: int
    checked: int  # architecture x release pairs where some load ran (not only skipped)
    failing: int  # of those, pairs that fail
    failing_architectures: int
    with_tags: int  # failing architectures that have published weights
    tags: int  # the published weights of the failing architectures


@dataclass
class Matrix:
    producers: list[str]
    rows: list[Row]  # most pretrained tags first, then by name

    def totals(self) -> Totals:
        cells = [c for row in self.rows for c in row.cells.values()]
        failing = [row for row in self.rows if row.failing]
        return Totals(
            architectures=len(self.rows), releases=len(self.producers),
            checked=sum(c.status != "skipped" for c in cells), failing=sum(c.failing for c in cells),
            failing_architectures=len(failing), with_tags=sum(bool(row.pretrained_tags) for row in failing),
            tags=sum(row.pretrained_tags or 0 for row in failing))

    def failing_rows(self) -> list[Row]:
        return [row for row in self.rows if row.failing]


def records_of(records: Iterable[Result]) -> list[Result]:
    return [r for r in records if r.path == PATH]


def build(records: Iterable[Result]) -> Matrix:
    """The matrix of every `cross_version` record among `records` (the others are ignored)."""
    by_model: dict[str, dict[str, Cell]] = {}
    tags: dict[str, int | None] = {}
    for r in records_of(records):
        _, _, written_by = origin(r)
        row = by_model.setdefault(r.model, {})
        for producer in dict.fromkeys(written_by):
            row.setdefault(producer, Cell()).records.append(r)
        seen = ((r.evidence or {}).get("extra") or {}).get("pretrained_tags")
        if isinstance(seen, int) and not isinstance(seen, bool):
            tags[r.model] = max(seen, tags.get(r.model) or 0)
        else:
            tags.setdefault(r.model, None)
    for row in by_model.values():
        for cell in row.values():
            cell.records.sort(key=lambda r: (rank(r.status), origin(r)[0], r.id))
    producers = sorted({p for row in by_model.values() for p in row}, key=producer_key)
    rows = [Row(m, tags[m], {p: row[p] for p in producers if p in row}) for m, row in by_model.items()]
    rows.sort(key=lambda row: (-(row.pretrained_tags if row.pretrained_tags is not None else -1), row.model))
    return Matrix(producers, rows)


def total_line(matrix: Matrix) -> str:
    """The section's one-line total, e.g. `38 of 1,210 architecture x release pairs fail ...`."""
    t = matrix.totals()
    line = (f"{t.failing:,} of {t.checked:,} architecture × release pairs checked fail ({t.architectures:,} "
            f"architectures, {t.releases} releases)")
    if not t.failing_architectures:
        return line + "."
    return (line + f": {t.failing_architectures:,} failing architecture(s), {t.with_tags:,} of them with published "
            f"weights ({t.tags:,} pretrained tags).")


def kinds_of(records: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(origin(r)[0] for r in records))
