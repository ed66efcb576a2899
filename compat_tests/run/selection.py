"""Which models the matrix runs: tiers, fnmatch globs over timm's registry, and a parameter budget."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from ..core.versions import installed
from .tiers import SMOKE, TIERS

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbBgG]?)\s*$")
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


class SelectionError(ValueError):
    """Bad user input to model selection; the message says what to type instead."""


@dataclass
class Selection:
    models: list[str] = field(default_factory=list)
    # Patterns from --models that matched no registered model: each is recorded as an error.
    unknown: list[str] = field(default_factory=list)
    # Tier models this timm release does not have.
    absent: list[str] = field(default_factory=list)
    # Models skipped by --max-params, with their parameter counts.
    too_large: dict[str, int] = field(default_factory=dict)


def parse_count(text: str) -> int:
    """'30M' -> 30_000_000; '1.5B', '500k' and plain integers too."""
    m = _SIZE.match(text or "")
    if not m:
        raise SelectionError(f"--max-params expects a count like 25M, 1.5B or 3000000, not {text!r}")
    return int(float(m.group(1)) * _SCALE[m.group(2).lower()])


def split_globs(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def count_params_meta(name: str) -> int | None:
    """Parameter count of `name` built on the meta device: no memory allocated. None if it can't be built so."""
    import timm

    from ..source.meta import on_meta

    try:
        model = on_meta(lambda: timm.create_model(name, pretrained=False)).value
    except Exception:  # some constructors compute on real tensors; such models are never skipped for size
        return None
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=64)
def fp32_bytes_meta(name: str) -> int | None:
    """Float32 bytes of `name`'s state (parameters and buffers), counted on the meta device: what one copy of the
    model will cost before anything is allocated. None if it cannot be built so (then the cell learns the size
    once its source is built)."""
    import timm

    from ..source.meta import on_meta
    from ..source.models import fp32_bytes

    try:
        return fp32_bytes(on_meta(lambda: timm.create_model(name, pretrained=False)).value)
    except Exception:  # a constructor that computes on real tensors: unknown until built
        return None


class Store(Protocol):
    """Where figures persist between runs (pytest's cache: get(key, default) and set(key, value))."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class MetaFigures:
    """A figure counted per model on the meta device (`count_params_meta`, `fp32_bytes_meta`) is costly for the
    whole registry: kept in a store per timm release under `kind`, and written back once after use rather than
    once per model."""

    def __init__(self, store: Store | None, kind: str, measure: Callable[[str], int | None]) -> None:
        self.store = store
        self.measure = measure
        self.key = f"timm-compat/{kind}/{installed()['timm']}"
        self.counts: dict[str, int | None] = dict(store.get(self.key, {}) if store is not None else {})
        self.added = False

    def known(self, names: Iterable[str]) -> bool:
        """Whether every one of `names` is in the store already (free to ask)."""
        return all(name in self.counts for name in names)

    def __call__(self, name: str) -> int | None:
        if name not in self.counts:
            self.counts[name] = self.measure(name)
            self.added = True
        return self.counts[name]

    def save(self) -> None:
        if self.store is not None and self.added:
            self.store.set(self.key, self.counts)


def select(
    registry: Iterable[str],
    models: str | None = None,
    exclude: str | None = None,
    tier: str = "smoke",
    max_params: int | None = None,
    count: Callable[[str], int | None] = count_params_meta,
) -> Selection:
    registry = list(registry)
    known = set(registry)
    selection = Selection()
    if tier not in TIERS:
        raise SelectionError(f"--tier must be one of {', '.join(TIERS)}, not {tier!r}")
    patterns = split_globs(models)
    if patterns:
        chosen: dict[str, None] = {}
        for pattern in patterns:
            hits = fnmatch.filter(registry, pattern)
            if not hits:
                selection.unknown.append(pattern)
            chosen.update(dict.fromkeys(hits))
        names = list(chosen)
    elif tier == "smoke":
        names = [n for n in SMOKE if n in known]
        selection.absent = [n for n in SMOKE if n not in known]
    else:
        names = registry
    excluded = split_globs(exclude)
    names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in excluded)]
    for name in names:
        size = count(name) if max_params is not None else None
        if size is not None and max_params is not None and size > max_params:
            selection.too_large[name] = size
        else:
            selection.models.append(name)
    return selection
