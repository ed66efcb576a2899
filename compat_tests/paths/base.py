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

from ..core.scenario import BASE, Override
from ..judge.check import NUMERIC, Check

Roundtrip = Callable[[Any, str, dict[str, Any]], dict[str, Any]]


def always_applicable() -> str | None:
    return None


def always_applies(model_name: str, override: Override) -> str | None:
    return None


def base_only(model_name: str) -> list[Override]:
    return [BASE]


def override_kwargs(override: Override) -> dict[str, Any]:
    return override.as_dict()


@dataclass(frozen=True)
class LoadingPath:
    name: str
    summary: str  # one line: how it saves and how it loads
    # roundtrip(model, workdir, spec) with spec = {"name", "kwargs", "seed"}
    roundtrip: Roundtrip
    # Standalone functions/classes the roundtrip calls, embedded in repro scripts before it (the check's own
    # helpers come with the check).
    helpers: tuple[Any, ...] = ()
    # A not-applicable reason under the installed releases, or None.
    requires: Callable[[], str | None] = always_applicable
    # Which overrides this path runs for a model.
    overrides: Callable[[str], list[Override]] = base_only
    # Run time: a not-applicable reason for one cell (an architecture refusing an override), or None.
    # Kept out of `overrides` so the matrix shows such cells as skipped with the reason.
    applies: Callable[[str, Override], str | None] = always_applies
    # The kwargs the *source* model is built with for an override (a path that loads a plain
    # checkpoint into an overridden model returns {} here).
    source_kwargs: Callable[[Override], dict[str, Any]] = override_kwargs
    # How a completed roundtrip is judged and reproduced (judge/check.py); the names a failure can get are
    # the catalog's entries scoped to this path's name (signatures/catalog.py).
    check: Check = NUMERIC
    # Whether the path runs when --paths is not given (slow, specialised paths opt out).
    default: bool = True
    # Whether a default (smoke) run samples this path's overrides; a path whose overrides are distinct
    # inputs rather than an axis of variations (stored artifacts) runs them all.
    sampled: bool = True
    # Whether the roundtrip also runs on the meta device, for the structural tier's key/shape/dtype checks
    # (False for loaders that need tensor data: safetensors' bytes, transformers' from_pretrained).
    structural: bool = False
    # Whether a default structural run (no --paths) includes it; a path whose structure another covers
    # (load_checkpoint runs pretrained_file's filter) opts out, since each cell builds the model again.
    structural_default: bool = True
    # Whether a cell builds today's model as its source first. A path whose files come from elsewhere and whose
    # judge reads only what the load did (cross_version) skips that build: across the registry it is most of
    # the cost.
    builds_source: bool = True
    # Whether the roundtrip builds a model only to load a file into it (load_state_dict copying every tensor in), so
    # that a tensor the load does not write keeps its initial value. Two things follow: its builds draw random
    # initialisers from a fixed pool (source/quick_init.py), since the load overwrites them; and on meta, where no
    # value can show a tensor left at init, the structural judge names the ones no copy reached (oracle.unwritten).
    # Not for a build that is itself the check (create_model), nor paths that trace or export what they build.
    loads_into_build: bool = False
    # Whether, on meta, the path's load is the very call the structural source was built with (`timm.create_model(
    # name)` under the same meta context): its cell's finding is that build (did it raise, did plain meta refuse the
    # constructor), not a second, identical build judged against the first, which cannot differ from it.
    structural_load_is_source_build: bool = False
    # The cells a default structural run gives this path for a model. Collection asks it of all 1,371
    # architectures, so it must not build the model (the full override axis does).
    structural_cells: Callable[[str], list[Override]] = base_only
