"""Deterministic, duration-balanced shards that keep each model's cells together (they share one
built source model, so splitting a model would build it twice)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core import result as results
from ..core.scenario import Scenario

# A scenario with no recorded duration counts as this many seconds.
DEFAULT_SECONDS = 2.0
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    pass


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard 2 of 4, counted from 1."""
    m = _SHARD.match(text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ShardError(f"--shard expects I/N with 1 <= I <= N, e.g. 2/4, not {text!r}")
    return int(m.group(1)), int(m.group(2))


def recorded_durations(reports: Iterable[Path]) -> dict[str, float]:
    """Seconds per scenario id from earlier reports (the latest record of an id wins)."""
    durations: dict[str, float] = {}
    for path in reports:
        for record in results.read(Path(path)):
            durations[record.id] = float(record.duration_s)
    return durations


def assign(scenarios: Sequence[Scenario], count: int, durations: dict[str, float]) -> list[list[Scenario]]:
    """Longest-processing-time-first over whole models: the heaviest model goes to the lightest shard."""
    by_model: dict[str, list[Scenario]] = defaultdict(list)
    for s in scenarios:
        by_model[s.model].append(s)
    weight = {m: sum(durations.get(s.id, DEFAULT_SECONDS) for s in cells) for m, cells in by_model.items()}
    shards: list[list[Scenario]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for model in sorted(by_model, key=lambda m: (-weight[m], m)):
        lightest = min(range(count), key=lambda i: (loads[i], i))
        shards[lightest].extend(by_model[model])
        loads[lightest] += weight[model]
    order = {s.id: i for i, s in enumerate(scenarios)}
    return [sorted(shard, key=lambda s: order[s.id]) for shard in shards]


def select_shard(scenarios: Sequence[Scenario], shard: str, durations: dict[str, float]) -> list[Scenario]:
    index, count = parse_shard(shard)
    return assign(scenarios, count, durations)[index - 1]
