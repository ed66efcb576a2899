"""`--explore N`: hypothesis draws N combinations of the override axis a model accepts, runs each as a cell,
and shrinks a failure to the smallest failing combination, which becomes an ordinary cell whose override
name spells the combination (`in_chans_1+patch_size_8`)."""

from __future__ import annotations

from collections.abc import Callable

from ..core.scenario import Override
from ..paths.support.overrides import override_axis, override_reason


def combine(parts: list[Override] | tuple[Override, ...]) -> Override:
    """One override holding every part's kwargs, named by the parts (sorted, so a combination has one id)."""
    parts = sorted(parts, key=lambda o: o.name)
    kwargs = {k: v for o in parts for k, v in o.kwargs}
    return Override.of("+".join(o.name for o in parts), **kwargs)


def explore(model: str, n: int, run_cell: Callable[[Override], bool]) -> list[Override]:
    """Up to `n` drawn combinations of the overrides `model` accepts; `run_cell(override)` says whether that
    cell passed. Returns [] when all passed, else the one shrunk failing combination (hypothesis shrinks toward
    fewer parts and earlier ones), so a failure is recorded once, at its smallest."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    # Singles already run as cells; a combination is two or more parts, each accepted alone.
    parts = [o for o, reason in override_axis(model) if reason is None and o.kwargs]
    parts = [o for o in parts if override_reason(model, o) is None]
    if len(parts) < 2 or n < 1:
        return []
    # One value per kwarg: `num_classes_10` and `num_classes_0` together are no combination.
    combos = st.lists(st.sampled_from(parts), min_size=2, max_size=len(parts),
                      unique_by=lambda o: tuple(k for k, _ in o.kwargs))
    tried: dict[str, bool] = {}  # shrinking revisits combinations; each cell runs once

    def fails(drawn: list[Override]) -> bool:
        override = combine(drawn)
        if override.name not in tried:
            # A combination the architecture refuses as a whole is not a loading failure.
            tried[override.name] = override_reason(model, override) is None and not run_cell(override)
        return tried[override.name]

    # derandomize: the same model and N draw the same combinations on every run (comparable reports).
    config = settings(max_examples=n, database=None, derandomize=True, deadline=None,
                      phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))
    try:
        found = find(combos, fails, settings=config)
    except NoSuchExample:
        return []
    # Hypothesis's shrinker stops within its call budget (tied to max_examples); finish with a greedy pass
    # that drops one part at a time while the rest still fails, so the result is 1-minimal.
    smallest = list(found)
    changed = True
    while changed and len(smallest) > 2:
        changed = False
        for part in list(smallest):
            rest = [o for o in smallest if o is not part]
            if fails(rest):
                smallest, changed = rest, True
                break
    return [combine(smallest)]
