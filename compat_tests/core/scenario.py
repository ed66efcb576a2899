"""A scenario is one cell of the matrix: (timm model, loading path, override), checked either with real
tensors (numeric) or on the meta device (structural: keys, shapes and dtypes only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Override:
    """Keyword arguments applied when the model is built and loaded; `name` is what ids show."""

    name: str = "base"
    kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **kwargs: Any) -> Override:
        return cls(name, tuple(sorted(kwargs.items())))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)


BASE = Override()

# Appended to the ids of structural (meta-device) cells, so they never collide with numeric ones.
META_SUFFIX = "@meta"


@dataclass(frozen=True)
class Scenario:
    model: str
    path: str
    override: Override = field(default=BASE)
    meta: bool = False

    @property
    def id(self) -> str:
        # '-' separates the three parts; model and path names never contain one.
        return f"{self.model}-{self.path}-{self.override.name}{META_SUFFIX if self.meta else ''}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "path": self.path,
            "override": self.override.name,
            "override_kwargs": json.loads(json.dumps(self.override.as_dict(), default=str)),
            "meta": self.meta,
        }


@dataclass(frozen=True)
class ParsedId:
    model: str
    path: str
    override: str
    meta: bool


def parse_id(scenario_id: str) -> ParsedId | None:
    """`resnet18-state_dict-base@meta` -> its parts; None when it is not a scenario id."""
    meta = scenario_id.endswith(META_SUFFIX)
    parts = scenario_id.removesuffix(META_SUFFIX).split("-")
    if len(parts) != 3 or not all(parts):
        return None
    return ParsedId(parts[0], parts[1], parts[2], meta)


def sample_overrides(overrides: list[Override], index: int, extra: int = 1) -> list[Override]:
    """`base` (when present) plus `extra` of the others, chosen by rotation from the model's `index`, so
    consecutive models of a tier take different overrides and together cover the whole axis."""
    base = [o for o in overrides if o.name == BASE.name]
    rest = [o for o in overrides if o.name != BASE.name]
    if len(rest) <= extra:
        return base + rest
    return base + [rest[(index * extra + j) % len(rest)] for j in range(extra)]
