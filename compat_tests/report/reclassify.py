"""Re-deriving recorded failures' names with today's catalog, so an old report gets today's names."""

from __future__ import annotations

from ..core.result import Result
from ..signatures.catalog import classify_record


def reclassify(records: list[Result]) -> list[Result]:
    """Each record's signature and message re-derived from its evidence; a record whose evidence this catalog
    cannot read (written by another harness version) keeps what it recorded."""
    for r in records:
        try:
            r.signature, r.message = classify_record(r)
        except Exception:  # evidence from a different harness version: keep what was recorded
            continue
    return records
