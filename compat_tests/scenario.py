"""A scenario is one cell of the matrix: (timm model, loading path, override)."""

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


@dataclass(frozen=True)
class Scenario:
    model: str
    path: str
    override: Override = field(default=BASE)

    @property
    def id(self) -> str:
        # '-' separates the three parts; model and path names never contain one.
        return f"{self.model}-{self.path}-{self.override.name}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "path": self.path,
            "override": self.override.name,
            "override_kwargs": json.loads(json.dumps(self.override.as_dict(), default=str)),
        }
