"""The Markdown summary: what broke and why, fit for $GITHUB_STEP_SUMMARY.

New failures come first (unnamed causes before named ones), each signature with its explanation, fix,
models and versions; then what changed since the previous run, what the baseline excused, and which
baseline entries can go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..core.result import STATUSES, Result
from ..signatures.catalog import needs_signature
from ..signatures.known_failures import KnownFailure
from . import cross_version
from .store import Diff
from .summary import NEW, behind_counts, by_entry, by_signature, explain, models_of, versions_of

# Rows listed per group; the rest is counted, so a 8,000-cell run stays readable.
MAX_ROWS = 15


def _cell(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    text = text[:limit] + ("…" if len(text) > limit else "")
    return text.replace("|", "\\|").replace("<", "&lt;")


def _group(signature: str, group: Sequence[Result]) -> list[str]:
    explains, fix = explain(signature, group)
    tag = " — **needs a signature**" if needs_signature(signature) else ""
    lines = [
        f"### `{signature}` ({len(group)}){tag}",
        "",
        f"{_cell(explains, 300)}" + (f"  \n**Fix:** {_cell(fix, 300)}" if fix else ""),
        "",
        f"**Paths:** {', '.join(sorted({r.path for r in group}))}  ",
        f"**Models ({len({r.model for r in group})}):** {models_of(group, 20)}  ",
        f"**Versions:** {'; '.join(versions_of(group))}",
        "",
        "| scenario | message |",
        "| --- | --- |",
    ]
    # The explanation is said once above; the rows keep each scenario's own detail.
    lines += [f"| `{r.id}` | {_cell(r.message.removeprefix(explains + ': '))} |" for r in group[:MAX_ROWS]]
    if len(group) > MAX_ROWS:
        lines.append(f"| … | {len(group) - MAX_ROWS} more |")
    return [*lines, ""]


def render(
    records: Sequence[Result],
    since: Diff | None = None,
    expired: Sequence[KnownFailure] = (),
    title: str = "timm-compat report",
    incomplete: Sequence[str] = (),
) -> str:
    counts = Counter(r.status for r in records)
    new = by_signature(r for r in records if r.status in NEW)
    n_new = sum(len(g) for g in new.values())
    verdict = (f"**{n_new} new failure(s)** outside the known-failures baseline" if n_new
               else "**No new failures** outside the known-failures baseline")
    lines = [
        f"## {title}",
        "",
        f"{verdict}; {counts.get('xfailed', 0)} known, {counts.get('xpassed', 0)} fixed upstream. "
        f"Versions: {'; '.join(versions_of(records)) or 'unknown'}.",
        "",
        "| " + " | ".join(STATUSES) + " |",
        "|" + " --- |" * len(STATUSES),
        "| " + " | ".join(str(counts.get(s, 0)) for s in STATUSES) + " |",
        "",
    ]
    if incomplete or (since is not None and since.not_run):
        lines += ["### INCOMPLETE: this report is not a whole run", ""]
        lines += [f"- {_cell(line, 300)}" for line in incomplete]
        if since is not None and since.not_run:
            lines.append(f"- {len(since.not_run)} scenario(s) of the previous run were selected but not run, e.g. "
                         + ", ".join(f"`{r.id}`" for r in since.not_run[:MAX_ROWS]))
        lines.append("")
    if expired:
        lines += ["### Expired known-failures entries (these fail the run)", ""]
        lines += [f"- `{e.id}` / `{e.signature}` expired {e.expires}: {_cell(e.reason)} (upstream: {e.upstream})"
                  for e in expired]
        lines.append("")
    if new:
        lines += ["## New failures, by signature", ""]
        for signature, group in new.items():
            lines += _group(signature, group)
    if since is not None:
        lines += _since(since)
    lines += _cross_version(records)
    fixed = by_entry(r for r in records if r.status == "xpassed")
    if fixed:
        lines += ["## Fixed upstream: remove the entry", "",
                  "| known-failures entry | now passing | e.g. |", "| --- | --- | --- |"]
        lines += [f"| id `{glob}`, signature `{sig}` | {len(g)} | `{g[0].id}` |" for (glob, sig), g in fixed.items()]
        lines.append("")
    known = by_entry(r for r in records if r.status == "xfailed")
    if known:
        checked, none = behind_counts(records)
        lines += ["## Known failures (xfailed)", "",
                  f"{checked} of these cells were checked in full behind their known failure (run again with the "
                  f"entry's workaround, and that load passed); {none} had no workaround, so nothing behind them was "
                  "checked.", ""]
        for (glob, sig), group in known.items():
            k = group[0].known
            expires = f", expires {k['expires']}" if k.get("expires") else ""
            lines += [f"- **`{sig}`** × {len(group)} via `{glob}`: {_cell(k.get('reason', ''), 300)} "
                      f"(upstream: {_cell(k.get('upstream', ''))}{expires})",
                      f"  models: {models_of(group, 12)}; versions: {'; '.join(versions_of(group))}"]
        lines.append("")
    return "\n".join(lines) + "\n"


# A cross-version cell's text: what broke there by signature, else whether the release's file loaded.
_CROSS_MARK = {"passed": "✓", "xpassed": "✓ (fixed upstream)", "skipped": "skip"}


def _cross_cell(cell: cross_version.Cell | None) -> str:
    if cell is None:
        return "–"  # that release wrote no file for the architecture
    if not cell.failing:
        return _CROSS_MARK.get(cell.status, cell.status)
    shown = cell.signatures()
    # A failure with no signature stands as its status (`error`), plain.
    text = ", ".join(s if s in STATUSES else f"`{s}`" for s in shown[:2])
    text += f" +{len(shown) - 2}" if len(shown) > 2 else ""
    return text + (" (known)" if cell.status == "xfailed" else "")


def _cross_version(records: Sequence[Result]) -> list[str]:
    """The failing architectures x the releases that wrote their files; absent when no cross_version ran."""
    if not cross_version.records_of(records):
        return []
    matrix = cross_version.build(records)
    lines = ["## Cross-version: files older releases wrote, loaded by the installed ones", "",
             cross_version.total_line(matrix), ""]
    failing = matrix.failing_rows()
    if not failing:
        return lines
    # Architectures with the most published weights first: theirs are the files users hold.
    lines += ["| architecture | pretrained tags | " + " | ".join(matrix.producers) + " |",
              "|" + " --- |" * (len(matrix.producers) + 2)]
    for row in failing[:MAX_ROWS]:
        tags = "?" if row.pretrained_tags is None else str(row.pretrained_tags)
        lines.append(f"| `{row.model}` | {tags} | "
                     + " | ".join(_cross_cell(row.cells.get(p)) for p in matrix.producers) + " |")
    if len(failing) > MAX_ROWS:
        lines.append(f"| … | {len(failing) - MAX_ROWS} more |" + " |" * len(matrix.producers))
    kinds = ", ".join(cross_version.kinds_of(cross_version.records_of(records)))
    lines += ["", f"✓ loaded; – that release wrote no file for it; skip: not checked. A cell is the worst over the "
                  f"kinds of file that release wrote ({kinds}).", ""]
    return lines


def _since(d: Diff) -> list[str]:
    lines = ["## Since the previous run", ""]
    if d.empty:
        return [*lines, "Nothing changed: the same scenarios fail, with the same signatures.", ""]
    for title, rows in (
        ("New failures", [f"`{n.id}` [{n.signature}]" for _, n in d.new_failures]),
        ("Failing scenarios not in the previous run", [f"`{n.id}` [{n.signature}]" for n in d.new_scenarios_failing]),
        ("Fixed", [f"`{o.id}` (was {o.signature})" for o, _ in d.fixed]),
        ("Changed signature", [f"`{o.id}`: {o.signature} → {n.signature}" for o, n in d.changed]),
        ("Not run (selected, never recorded)", [f"`{o.id}`" for o in d.not_run]),
        ("Not selected this time", [f"`{o.id}`" for o in d.not_selected]),
    ):
        if rows:
            lines.append(f"**{title} ({len(rows)}):** " + ", ".join(rows[:MAX_ROWS * 2])
                         + (f", … {len(rows) - MAX_ROWS * 2} more" if len(rows) > MAX_ROWS * 2 else ""))
            lines.append("")
    return lines
