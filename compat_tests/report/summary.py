"""The end-of-run table: scenarios per status, new failures grouped by signature (those that need a
signature first), then the known-failures baseline: what it excused, what is fixed, what expired."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ..core.result import STATUSES, Result
from ..signatures.catalog import BY_NAME, needs_signature
from ..signatures.known_failures import KnownFailure

# `failed` and `error` are outside the baseline: they are what makes a run red.
NEW = ("failed", "error")
# How the memory check's skip reasons start (run/memory.py Need.refusal).
MEMORY_SKIP = "skipped: needs ~"


def models_of(results: Iterable[Result], limit: int = 8) -> str:
    names = sorted({r.model for r in results})
    head = ", ".join(names[:limit])
    return head + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


_SHOWN_VERSIONS = ("torch", "timm", "transformers")


def versions_of(results: Iterable[Result]) -> list[str]:
    """Distinct version sets among `results`, e.g. ['torch 2.14.1, timm 1.0.31, transformers 5.23.0']."""
    return sorted({", ".join(f"{k} {r.versions[k]}" for k in _SHOWN_VERSIONS if r.versions.get(k)) for r in results})


def by_signature(results: Iterable[Result]) -> dict[str, list[Result]]:
    """Groups keyed by signature, ordered: needs-a-signature first, then largest, then by name."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.signature or "unclassified"].append(r)
    order = sorted(groups, key=lambda s: (not needs_signature(s), -len(groups[s]), s))
    return {s: sorted(groups[s], key=lambda r: r.id) for s in order}


def explain(signature: str, group: Sequence[Result]) -> tuple[str, str]:
    """(one-line explanation, suggested fix) for a signature group."""
    if signature in BY_NAME:
        return BY_NAME[signature].explains, BY_NAME[signature].fix
    if needs_signature(signature):
        return group[0].message, "needs a signature: add an entry to compat_tests/signatures/catalog.py"
    return group[0].message, ""


def by_entry(results: Iterable[Result]) -> dict[tuple[str, str], list[Result]]:
    """xfailed/xpassed results grouped by the known-failures entry (id glob, signature) that decided them."""
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in results:
        groups[(r.known.get("id", "?"), r.known.get("signature", "?"))].append(r)
    return dict(sorted(groups.items()))


def behind_counts(results: Iterable[Result]) -> tuple[int, int]:
    """Of the xfailed cells: how many were checked in full behind their known failure (run again with its
    workaround, and that load passed), and how many had no workaround, so nothing behind it was checked."""
    xfailed = [r for r in results if r.status == "xfailed"]
    return (sum(r.behind.get("status") == "passed" for r in xfailed),
            sum(not r.behind for r in xfailed))


def render(results: Iterable[Result], expired: Sequence[KnownFailure] = (), baseline_file: str = "",
           time: dict[str, Any] | None = None) -> list[str]:
    """The end-of-run table; `time` (the end line's account of the run's time) adds where the time went."""
    results = list(results)
    if not results:
        return ["no scenarios recorded"]
    counts = Counter(r.status for r in results)
    lines = ["  ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)]
    # The memory check's skips are the machine's limits, not the library's: say which models they hit.
    if memory := [r for r in results if r.status == "skipped" and r.message.startswith(MEMORY_SKIP)]:
        lines.append(f"skipped for memory: {len(memory)} cells of {models_of(memory)}, e.g. {memory[0].id}: "
                     f"{memory[0].message}")
    groups = by_signature(r for r in results if r.status in NEW)
    if groups:
        lines += ["", "new failures by signature (not in the known-failures baseline):"]
    # Failures with no named cause yet come first: they are the ones that need a new signature.
    for signature, group in groups.items():
        tag = "  [needs a signature]" if needs_signature(signature) else ""
        paths = ", ".join(sorted({r.path for r in group}))
        lines.append(f"  {signature} ({len(group)}){tag}: paths {paths}; models {models_of(group)}")
        lines.append(f"      {explain(signature, group)[0][:160]}")
    xfailed = by_entry(r for r in results if r.status == "xfailed")
    if xfailed:
        checked, none = behind_counts(results)
        lines += ["", f"known failures (xfailed, baseline {baseline_file or 'given'}): {checked} checked in full "
                      f"behind the known failure with its workaround, {none} with no workaround:"]
    for (glob, signature), group in xfailed.items():
        label = glob if len(glob) <= 60 else glob[:57] + "..."
        lines.append(f"  {signature} ({len(group)}) via entry {label!r}: models {models_of(group)}; "
                     f"upstream: {group[0].known.get('upstream', '?')}")
    xpassed = by_entry(r for r in results if r.status == "xpassed")
    if xpassed:
        lines += ["", "fixed upstream, remove the entry (xpassed):"]
    for (glob, signature), group in xpassed.items():
        lines.append(f"  entry id={glob!r} signature={signature!r}: {len(group)} now pass, e.g. {group[0].id}")
    if expired:
        lines += ["", "EXPIRED known-failures entries (these fail the run; fix, extend or remove them):"]
    for entry in expired:
        lines.append(f"  id={entry.id!r} signature={entry.signature!r} expired {entry.expires}: {entry.reason[:100]}")
    if time and (spent := render_time(time)):
        lines += ["", *spent]
    return lines


_PART_NAMES = {"cells_s": "cells", "source_builds_s": "source builds", "collection_s": "startup and collection",
               "restarts_s": "crashed workers and restarts", "memory_waits_s": "waiting for memory",
               "idle_s": "idle between cells", "other_s": "other"}


def _share(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.0f}%"


def render_time(time: dict[str, Any]) -> list[str]:
    """Where the run's time went (the `time` of its end line): worker time by part, and each worker's share
    inside cells or source builds beside the 90% goal, with its peak RSS."""
    workers = time.get("per_worker") or {}
    if not workers:
        return []
    total = time.get("workers_wall_s") or 0.0
    parts = ", ".join(f"{name} {time.get(key, 0.0):.0f} s" for key, name in _PART_NAMES.items())
    lines = [f"time: wall {time.get('wall_s', 0.0):.0f} s; {len(workers)} worker(s), {total:.0f} s of worker time: "
             f"{_share(time.get('in_cells_share'))} inside cells or source builds (goal >= 90%); {parts}"]
    for name, w in sorted(workers.items()):
        state = " (crashed)" if w.get("crashed") else " (replacement)" if w.get("replacement") else ""
        rest = ", ".join(f"{_PART_NAMES[k]} {w[k]:.0f} s" for k in _PART_NAMES if k not in ("cells_s",) and w.get(k))
        lines.append(f"  {name}{state}: wall {w['wall_s']:.0f} s, {w['cells']} cells, "
                     f"{_share(w.get('in_cells_share'))} inside cells or source builds (cells {w['cells_s']:.0f} s"
                     f"{', ' + rest if rest else ''}), peak RSS {w.get('peak_rss_mb') or 0:.0f} MB")
    return lines
