"""Re-deriving recorded failures' names with today's catalog, on request: an old report gets today's names."""

from __future__ import annotations

from ..core.result import Result
from ..signatures.catalog import classify_record


def reclassify(records: list[Result]) -> list[tuple[str, str, str]]:
    """Each record's signature and message re-derived from its evidence, in place; a record whose evidence this
    catalog cannot read (written by another harness version) keeps what it recorded. Returns (id, recorded,
    re-derived) for every record whose name changed, so the caller can say so."""
    changed = []
    for r in records:
        try:
            signature, message = classify_record(r)
        except Exception:  # evidence from a different harness version: keep what was recorded
            continue
        if signature != r.signature:
            changed.append((r.id, r.signature, signature))
        r.signature, r.message = signature, message
    return changed
