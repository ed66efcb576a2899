"""The end-of-run table: scenarios per status, new failures grouped by signature (those that need a
signature first), then the known-failures baseline: what it excused, what is fixed, what expired."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from ..core.result import STATUSES, Result
from ..signatures.catalog import BY_NAME, needs_signature
from ..signatures.known_failures import KnownFailure

# `failed` and `error` are outside the baseline: they are what makes a run red.
NEW = ("failed", "error")


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


def render(results: Iterable[Result], expired: Sequence[KnownFailure] = (), baseline_file: str = "") -> list[str]:
    results = list(results)
    if not results:
        return ["no scenarios recorded"]
    counts = Counter(r.status for r in results)
    lines = ["  ".join(f"{status} {counts.get(status, 0)}" for status in STATUSES)]
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
    return lines
