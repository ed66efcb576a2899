"""Which systematic rename turns a checkpoint's keys into the model's, inferred from the missing and
unexpected keys of a failed load, and the `key-layout-mismatch` detector built on it.

Two walls of key names say nothing; `encoder.layers.{i}. -> blocks.{i}.  (144 keys)` says which
converter is missing. Each missing key is paired with the unexpected key sharing the longest dotted
suffix (and the same layer numbers); what remains of the two keys is the rename, with layer numbers
generalised to `{i}`, and identical renames are counted together.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

from ..core.evidence import Evidence
from .loads import prefix_mismatch

_INDEX = re.compile(r"(?<=\.)\d+(?=\.)|^\d+(?=\.)")
# A rename must explain at least this many keys to count as systematic.
MIN_KEYS = 2


@dataclass(frozen=True)
class Rename:
    old: str  # checkpoint side, e.g. "encoder.layers.{i}."
    new: str  # model side, e.g. "blocks.{i}."
    count: int


def _template(text: str) -> str:
    return _INDEX.sub("{i}", text)


def _indices(key: str) -> tuple[str, ...]:
    return tuple(_INDEX.findall(key))


def _split(old: str, new: str) -> tuple[str, str]:
    """The differing heads of two keys once their longest common dotted suffix is removed (a layer
    number stays in the heads, so `encoder.layers.{i}.` maps to `blocks.{i}.`)."""
    a, b = old.split("."), new.split(".")
    n = _common_suffix(old, new)
    while n and a[len(a) - n].isdigit() and len(a) > n and len(b) > n:
        n -= 1
    head_a, head_b = a[: len(a) - n], b[: len(b) - n]
    tail = "." if n else ""
    return ".".join(head_a) + (tail if head_a else ""), ".".join(head_b) + (tail if head_b else "")


def _common_suffix(a: str, b: str) -> int:
    x, y = a.split("."), b.split(".")
    n = 0
    while n < min(len(x), len(y)) and x[-1 - n] == y[-1 - n]:
        n += 1
    return n


def _plausible(old: str, new: str) -> bool:
    """A pair sharing only the leaf (`weight`) is a rename only if the heads look alike or one is empty
    (a prefix added or stripped); otherwise `ln_final.bias` would 'rename' to `fc.bias`."""
    if _common_suffix(old, new) > 1:
        return True
    head_old, head_new = _split(old, new)
    return not head_old or not head_new or SequenceMatcher(None, head_old, head_new).ratio() >= 0.4


def infer_renames(missing: list[str], unexpected: list[str]) -> tuple[list[Rename], list[str], list[str]]:
    """(renames by count, missing keys left unexplained, unexpected keys left unexplained)."""
    pool = list(unexpected)
    by_index: dict[tuple[str, ...], list[str]] = {}
    for key in pool:
        by_index.setdefault(_indices(key), []).append(key)
    pairs: list[tuple[str, str]] = []
    left_missing: list[str] = []
    for key in missing:
        candidates = by_index.get(_indices(key)) or []
        best = max(candidates, key=lambda u: (_common_suffix(u, key), -len(u)), default=None)
        if best is None or not _plausible(best, key):
            left_missing.append(key)
            continue
        candidates.remove(best)
        pairs.append((best, key))
    counts = Counter(tuple(_template(part) for part in _split(old, new)) for old, new in pairs)
    renames = [Rename(o, n, c) for (o, n), c in counts.most_common() if c >= MIN_KEYS or len(pairs) < MIN_KEYS]
    kept = {(r.old, r.new) for r in renames}
    for old, new in pairs:
        if tuple(_template(p) for p in _split(old, new)) not in kept:
            left_missing.append(new)
    paired = {old for old, new in pairs if tuple(_template(p) for p in _split(old, new)) in kept}
    left_unexpected = [k for k in unexpected if k not in paired]
    return renames, left_missing, left_unexpected


def render_table(renames: list[Rename], left_missing: list[str], left_unexpected: list[str], limit: int = 8) -> str:
    """A short table: one rename per line, then how many keys nothing explains."""
    width = max([len(r.old or "''") for r in renames[:limit]] + [10])
    lines = [f"  {(r.old or chr(39) * 2):<{width}} -> {r.new or chr(39) * 2}  ({r.count} keys)"
             for r in renames[:limit]]
    if len(renames) > limit:
        lines.append(f"  ... {len(renames) - limit} more rename(s)")
    if left_missing:
        lines.append(f"  unexplained missing: {len(left_missing)}, e.g. {', '.join(left_missing[:2])}")
    if left_unexpected:
        lines.append(f"  unexplained unexpected: {len(left_unexpected)}, e.g. {', '.join(left_unexpected[:2])}")
    return "\n".join(lines)


def key_layout(ev: Evidence) -> str | None:
    if not ev.missing_keys or not ev.unexpected_keys or prefix_mismatch(ev):
        return None
    renames, left_missing, left_unexpected = infer_renames(ev.missing_keys, ev.unexpected_keys)
    if not renames or sum(r.count for r in renames) < MIN_KEYS:
        return None
    explained = sum(r.count for r in renames)
    head = "; ".join(f"{r.old or chr(39) * 2} -> {r.new or chr(39) * 2}" for r in renames[:3])
    return (f"{len(renames)} systematic rename(s) explain {explained} of {len(ev.missing_keys)} missing keys "
            f"({head}):\n" + render_table(renames, left_missing, left_unexpected))
