"""The plan of a run: which cells (scenarios) the options select, and which models are skipped whole, with
why. Plain Python over the registry and the loading paths, so it can be tested without pytest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.scenario import BASE, Scenario, sample_overrides
from ..core.versions import installed
from ..paths import all_paths
from ..paths.base import LoadingPath
from .selection import (
    MetaFigures,
    Selection,
    SelectionError,
    Store,
    count_params_meta,
    parse_count,
    select,
    split_globs,
)
from .sharding import recorded_durations, select_shard
from .tiers import TIER_PATHS


@dataclass(frozen=True)
class Options:
    """What the user asked for (the matrix's command-line options)."""

    models: str | None = None
    exclude: str | None = None
    tier: str = "smoke"
    max_params: str | None = None
    paths: str | None = None
    explore: int = 0
    shard: str | None = None
    shard_durations: str | None = None

    @property
    def sampled(self) -> bool:
        # A default run (no --paths) is a smoke run: each override axis is sampled, rotating across the
        # models so the tier still covers every override; naming a path runs its whole grid.
        return not self.paths

    @property
    def structural(self) -> bool:
        # The cross-version tier replays every snapshot on the meta device, as the structural tier does.
        return self.tier in ("structural", "cross-version")


@dataclass
class Plan:
    scenarios: list[Scenario] = field(default_factory=list)
    skip_models: dict[str, str] = field(default_factory=dict)


def selected_paths(paths: str | None, tier: str = "smoke") -> list[str]:
    """The loading paths `--paths` names (default: the tier's, else every default path); an unknown name is a
    SelectionError."""
    known = all_paths()
    wanted = split_globs(paths) or list(TIER_PATHS.get(tier, ())) or [name for name, p in known.items() if p.default]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise SelectionError(f"--paths: unknown path(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return wanted


def make_plan(options: Options, store: Store | None = None) -> Plan:
    """Every cell the options select, in order; tier models this timm lacks and models over the parameter
    budget become one skipped cell each, and unknown patterns one error cell each, so the report shows them."""
    selection = _select(options, store)
    chosen = selected_paths(options.paths, options.tier)
    paths = all_paths()
    if options.structural and options.sampled and options.tier not in TIER_PATHS:
        chosen = [name for name in chosen if paths[name].structural and paths[name].structural_default]
    plan = Plan()
    cells: dict[int, list[Scenario]] = {}
    for index in _collection_order(len(selection.models)):
        model = selection.models[index]
        cells[index] = [cell for name in chosen for cell in _cells(model, index, paths[name], options)]
    plan.scenarios += [cell for index in range(len(selection.models)) for cell in cells[index]]
    if options.explore and "pretrained_file" in chosen:
        plan.scenarios += explored(selection.models, options.explore)
    plan.scenarios += [Scenario(pattern, "create_model") for pattern in selection.unknown]
    plan.skip_models = _skipped(selection, options)
    plan.scenarios += [Scenario(model, "create_model") for model in plan.skip_models]
    if options.shard:
        durations = recorded_durations(Path(p) for p in split_globs(options.shard_durations))
        plan.scenarios = select_shard(plan.scenarios, options.shard, durations)
    return plan


def _collection_order(count: int) -> list[int]:
    """The order in which this process works out the models' cells: its own share first (every n-th model, from
    its worker number on), then the rest. xdist workers all collect the same cells, and what one learns of a model
    on the way (the facts its override axis asks, shared through the run's folder: `share_facts`) the others read;
    so each builds its own share, and by the time it reaches the others' they are mostly there. The plan itself
    keeps the models' order."""
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    if not (worker[2:].isdigit() and workers.isdigit() and int(workers) > 1):
        return list(range(count))
    n = int(workers)
    own = int(worker[2:]) % n
    return [i for i in range(count) if i % n == own] + [i for i in range(count) if i % n != own]


def _select(options: Options, store: Store | None) -> Selection:
    import timm

    counts = MetaFigures(store, "param-counts", count_params_meta)
    selection = select(timm.list_models(), models=options.models, exclude=options.exclude, tier=options.tier,
                       max_params=parse_count(options.max_params) if options.max_params is not None else None,
                       count=counts)
    counts.save()
    return selection


def _cells(model: str, index: int, path: LoadingPath, options: Options) -> list[Scenario]:
    """One model's cells on one path: its override grid, sampled in a default run; on the meta device in the
    structural tier, where a default run takes only the path's few structural cells (every cell builds the
    model again, and the whole registry has to fit in minutes)."""
    if options.structural and not path.structural:
        return [Scenario(model, path.name, BASE, meta=True)]  # one cell saying why not
    if options.structural and options.sampled and options.tier not in TIER_PATHS:
        return [Scenario(model, path.name, o, meta=True) for o in path.structural_cells(model)]
    overrides = path.overrides(model)
    if options.sampled and path.sampled:
        overrides = sample_overrides(overrides, index)
    return [Scenario(model, path.name, o, meta=options.structural) for o in overrides]


def _skipped(selection: Selection, options: Options) -> dict[str, str]:
    timm_version = installed()["timm"]
    skipped = {model: f"not applicable: timm {timm_version} has no {model} (the smoke tier lists it)"
               for model in selection.absent}
    for model, size in selection.too_large.items():
        skipped[model] = f"skipped: {size / 1e6:.1f}M parameters > --max-params {options.max_params}"
    return skipped


def explored(models: list[str], n: int) -> list[Scenario]:
    """Shrunk failing override combinations, found by running cells now. Derandomized, so every xdist
    worker collects the same cells (each explores on its own: --explore is an opt-in cost)."""
    from ..source.models import SourceCache
    from .explore import explore
    from .runner import run_scenario

    cache = SourceCache()
    found: list[Scenario] = []
    for model in models:
        def passes(override, model=model) -> bool:
            return run_scenario(Scenario(model, "pretrained_file", override), cache).status != "failed"

        found += [Scenario(model, "pretrained_file", o) for o in explore(model, n, passes)]
    return found
