"""The one protocol every loading path follows.

A path is a `LoadingPath` value in its own module under `compat_tests/paths/`. Its `roundtrip`
saves a source model one way and loads it another, using only torch/timm/transformers/safetensors
(so its source can be pasted into a repro script as is), and returns a dict:

    model            the loaded timm module, whose state_dict the oracle compares with the source
    forward          optional callable(x) -> tensor, when outputs come through a wrapper
    missing_keys     optional, what the loader itself reported
    unexpected_keys  optional, likewise
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..scenario import BASE, Override

Roundtrip = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


def always_applicable() -> str | None:
    return None


def base_only(model_name: str) -> list[Override]:
    return [BASE]


@dataclass(frozen=True)
class LoadingPath:
    name: str
    summary: str  # one line: how it saves and how it loads
    # roundtrip(model, workdir, spec) with spec = {"name", "kwargs", "seed"}
    roundtrip: Roundtrip
    # Standalone functions/classes the roundtrip calls, embedded in repro scripts before it.
    helpers: tuple[Any, ...] = ()
    # A not-applicable reason under the installed releases, or None.
    requires: Callable[[], str | None] = always_applicable
    # Which overrides this path runs for a model.
    overrides: Callable[[str], list[Override]] = base_only
