"""Detectors of the `cross_version` path: what changed between the release that wrote a file and the one reading it.

They read `Evidence.extra` set by that path's judge (kind, stage, loader, the releases on both sides, how many
pretrained tags the architecture has), so every message says what changed, between which releases, and how many
published weights it reaches.
"""

from __future__ import annotations

import re
from collections import Counter

from ..core.evidence import Evidence
from .detect import message, raised
from .loads import prefix_mismatch
from .renames import MIN_KEYS, infer_renames, render_table

UNEXPECTED_ARG = r"unexpected keyword argument '(\w+)'"
_unexpected_arg = raised(UNEXPECTED_ARG, "TypeError")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")


def _ours(ev: Evidence) -> bool:
    return bool(ev.extra.get("written_by"))


def releases(ev: Evidence) -> str:
    """`written by timm 0.9.16 (and 3 later releases), read by timm 1.0.31; 12 pretrained tags`."""
    written = ev.extra.get("written_by") or []
    produced = ev.extra.get("producer_versions") or {}
    consumed = ev.extra.get("consumer_versions") or {}
    package = "transformers" if produced.get("transformers") and "transformers" in (written or [""])[0] else "timm"
    later = f" (and {len(written) - 1} later release{'s' if len(written) > 2 else ''})" if len(written) > 1 else ""
    tags = ev.extra.get("pretrained_tags")
    reach = f"; {tags} pretrained tag{'s' if tags != 1 else ''}" if tags is not None else ""
    return f"written by {package} {produced.get(package)}{later}, read by {package} {consumed.get(package)}{reach}"


def modules(keys: list[str], n: int = 4) -> str:
    """The modules `keys` belong to, layer numbers folded (`blocks.{i}.ls1 (24 keys)`), most keys first."""
    counts = Counter(_INDEX.sub("{i}", key).rpartition(".")[0] or key for key in keys)
    shown = [f"{name} ({count} key{'s' if count > 1 else ''})" for name, count in counts.most_common(n)]
    return ", ".join(shown) + (f" (+{len(counts) - n} more modules)" if len(counts) > n else "")


def left_unfilled(ev: Evidence) -> str | None:
    """A load that raised nothing yet did not fill every tensor: timm's non-strict load when it drops a
    classifier (a headless checkpoint), or transformers' from_pretrained, which only logs what it skipped."""
    if not _ours(ev) or ev.exception or not (ev.missing_keys or ev.unexpected_keys):
        return None
    parts = []
    if ev.missing_keys:
        parts.append(f"{len(ev.missing_keys)} tensor(s) left at their initial values: {modules(ev.missing_keys)}")
    if ev.unexpected_keys:
        parts.append(f"{len(ev.unexpected_keys)} saved tensor(s) dropped: {modules(ev.unexpected_keys)}")
    return f"{'; '.join(parts)} ({releases(ev)})"


def keys_renamed(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.missing_keys or not ev.unexpected_keys or prefix_mismatch(ev):
        return None
    renames, left_missing, left_unexpected = infer_renames(ev.missing_keys, ev.unexpected_keys)
    # A module renamed whole: every missing key under the new name is explained. Where only some pair up (a bias
    # kept its shape while the layer around it changed), the structure changed, which other names say.
    templated = [_INDEX.sub("{i}", key) for key in ev.missing_keys]
    # A rename keeps at least the leaf (`weight`): keys sharing nothing are not one tensor under two names.
    renames = [r for r in renames if r.count == sum(key.startswith(r.new) for key in templated)
               and all(not head or head.endswith(".") for head in (r.old, r.new))]
    explained = sum(r.count for r in renames)
    if not renames or explained < MIN_KEYS:
        return None
    head = "; ".join(f"{r.old or chr(39) * 2} -> {r.new or chr(39) * 2}" for r in renames[:3])
    silently = "; the load raised nothing" if not ev.exception else ""
    return (f"{explained} of {len(ev.missing_keys)} missing keys are renamed ({head}) without the "
            f"checkpoint_filter_fn mapping them ({releases(ev)}{silently}):\n" + render_table(renames, left_missing,
                                                                                 left_unexpected))


def keys_added(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.missing_keys:
        return None
    return f"today's model has {len(ev.missing_keys)} key(s) the old file lacks, in {modules(ev.missing_keys)} " \
           f"({releases(ev)})"


def keys_removed(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.unexpected_keys:
        return None
    return f"the old file has {len(ev.unexpected_keys)} key(s) today's model lacks, in " \
           f"{modules(ev.unexpected_keys)} ({releases(ev)})"


def shape_changed(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.shape_mismatches:
        return None
    shown = [f"{k}: {a} -> {b}" for k, a, b in ev.shape_mismatches[:3]]
    more = f" (+{len(ev.shape_mismatches) - 3} more)" if len(ev.shape_mismatches) > 3 else ""
    return f"{'; '.join(shown)}{more} ({releases(ev)})"


def config_rejected(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.exception or ev.extra.get("kind") not in ("hub", "hf_config"):
        return None
    if m := _unexpected_arg(ev):
        return f"the old config.json's `{m.group(1)}` is no longer accepted ({releases(ev)}; " \
               f"{ev.extra.get('loader')})"
    if ev.extra.get("stage") == "config":
        return f"{ev.exception['type']}: {message(ev).splitlines()[0][:200]} ({releases(ev)}; {ev.extra.get('loader')})"
    return None


def filter_raised(ev: Evidence) -> str | None:
    where = (ev.exception or {}).get("where") or ""
    if not _ours(ev) or not ev.exception or "filter" not in where:
        return None
    return f"{ev.exception['type']}: {(message(ev).splitlines() or [''])[0][:200]} at {where} ({releases(ev)})"


def pickle_forward_broken(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.exception or ev.extra.get("kind") != "pickle":
        return None
    where = ev.exception.get("where") or "?"
    return f"{ev.exception['type']}: {(message(ev).splitlines() or [''])[0][:200]} at {where} " \
           f"(at {ev.extra.get('stage')}; {releases(ev)})"


def load_raised(ev: Evidence) -> str | None:
    if not _ours(ev) or not ev.exception:
        return None
    where = ev.exception.get("where") or "?"
    return f"{ev.exception['type']}: {(message(ev).splitlines() or [''])[0][:200]} at {where} " \
           f"({ev.extra.get('loader')}; {releases(ev)})"

