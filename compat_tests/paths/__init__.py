"""Loading paths: one module each, discovered here. Adding a path means adding one file."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from .base import LoadingPath


@cache
def all_paths() -> dict[str, LoadingPath]:
    """Every `PATH` defined by a module of this package, in the modules' declared `ORDER`."""
    found: list[tuple[int, LoadingPath]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        path = getattr(module, "PATH", None)
        if isinstance(path, LoadingPath):
            found.append((getattr(module, "ORDER", 100), path))
    return {p.name: p for _, p in sorted(found, key=lambda item: (item[0], item[1].name))}
