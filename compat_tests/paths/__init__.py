"""Loading paths: one module each, discovered here. Adding a path means adding one file.

A path module defines `PATH` (a `base.LoadingPath`) and `ORDER` (where it stands in reports). Modules under
`support/` hold what several paths share.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import LoadingPath


def _modules() -> list[str]:
    return [info.name for info in pkgutil.iter_modules(__path__) if not info.ispkg and info.name != "base"]


@cache
def all_paths() -> dict[str, LoadingPath]:
    """Every `PATH` defined by a module of this package, in the modules' declared `ORDER`."""
    from .base import LoadingPath

    found: list[tuple[int, LoadingPath]] = []
    for name in _modules():
        module = importlib.import_module(f"{__name__}.{name}")
        path = getattr(module, "PATH", None)
        if isinstance(path, LoadingPath):
            found.append((getattr(module, "ORDER", 100), path))
    return {p.name: p for _, p in sorted(found, key=lambda item: (item[0], item[1].name))}


@cache
def path_order() -> tuple[str, ...]:
    """The path names in `all_paths()` order, read from the modules' source without importing them: the
    report tools order their columns by it and must run without torch or timm."""
    found: list[tuple[int, str]] = []
    for module in _modules():
        tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
        order, name = 100, None
        for node in tree.body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["ORDER"]:
                order = ast.literal_eval(node.value)
            elif isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PATH"]:
                keywords = {k.arg: k.value for k in getattr(node.value, "keywords", [])}
                name = ast.literal_eval(keywords["name"]) if "name" in keywords else None
        if name:
            found.append((order, name))
    return tuple(name for _, name in sorted(found))
