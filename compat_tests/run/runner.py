"""Runs one scenario end to end and turns what happened into a Result. Never raises for a product
failure: the library's exceptions become evidence; only the harness's own bugs are `error`s."""

from __future__ import annotations

import contextlib
import difflib
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial

from ..core.evidence import Evidence, NotApplicable, from_exception
from ..core.result import Result
from ..core.scenario import Scenario
from ..core.versions import BrokenInstall, installed
from ..judge.oracle import judge_structure
from ..paths import all_paths
from ..paths.base import LoadingPath
from ..paths.support.workarounds import WORKAROUNDS
from ..repro.script import script
from ..signatures.catalog import classify, is_limitation
from ..source.meta import META_BUILDS, MetaShapesCpuFactories, meta_limitation
from ..source.models import DEFAULT_SEED, SourceCache, SourceModel
from ..source.quick_init import QuickInit
from .workdirs import workdir

# The input size a cell without a source model reports (its repro decides its own input).
UNBUILT_INPUT = (3, 224, 224)
# Evidence of a structural cell whose models needed the CPU factories to build on meta says so under this key.
META_BUILD = "meta_build"


class _Done(Exception):
    """The cell's outcome is already in its result: stop running it."""


def _unknown_model(name: str) -> str | None:
    import timm

    if timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}: not in timm {installed()['timm']}'s registry{hint}"


def run_scenario(scenario: Scenario, cache: SourceCache, run_id: str = "", seed: int = DEFAULT_SEED,
                 workarounds: Sequence[str] = ()) -> Result:
    """One cell, run and judged; with `workarounds` (names in paths/support/workarounds.py) applied in order
    around its save and load, as a user who applies those fixes by hand loads it."""
    started = time.perf_counter()
    result = Result.for_scenario(scenario, "passed", run_id)
    workarounds = tuple(workarounds)
    try:
        _run(scenario, cache, seed, result, workarounds)
    except _Done:
        pass
    except Exception as e:  # a bug of the harness itself: say so, never blame the library
        result.status, result.signature = "error", f"harness-error:{type(e).__name__}"
        result.message = f"timm-compat itself failed: {e!r} ({traceback.format_exc(limit=-1).strip()})"
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def _stop(result: Result, status: str, message: str, signature: str = "") -> _Done:
    result.status, result.message, result.signature = status, message, signature
    return _Done()


def _run(scenario: Scenario, cache: SourceCache, seed: int, result: Result, workarounds: tuple[str, ...]) -> None:
    path = _applicable_path(scenario, result)
    source_kwargs = path.source_kwargs(scenario.override)
    spec = {"name": scenario.model, "kwargs": scenario.override.as_dict(), "seed": seed,
            "source_kwargs": source_kwargs}
    source = _source(scenario, path, cache, source_kwargs, seed, result) if path.builds_source else \
        SourceModel(scenario.model, source_kwargs, seed, None, UNBUILT_INPUT, None)
    refused = source.meta_refused
    is_source_build = scenario.meta and path.structural_load_is_source_build
    if is_source_build and refused is not None and meta_limitation(refused) is None:
        # Plain meta refused the constructor, as transformers 5's build on meta does: the baseline cell owns that
        # finding; the model's other cells are checked on the build the CPU factories gave.
        evidence = from_exception(refused)
    else:
        # A load that is the source's own build call, under the same context, is judged by that build: a second,
        # identical build compared with the first could not differ.
        if is_source_build:
            evidence = _built_with(Evidence(extra={"built_keys": len(source.state())}), source.meta_context)
        else:
            evidence = _load_and_judge(scenario, path, source, spec, result, workarounds)
        if scenario.meta and refused is not None:  # checked on the CPU-factories build: say what plain meta said
            evidence.extra.setdefault("plain_meta_refused", f"{type(refused).__name__}: {str(refused)[:200]}")
    _conclude(result, evidence, path, spec, source.input_size, scenario.meta, workarounds)


def _applicable_path(scenario: Scenario, result: Result) -> LoadingPath:
    """The cell's loading path, once it is known to apply to this model under the installed releases."""
    paths = all_paths()
    path = paths.get(scenario.path)
    if path is None:
        raise _stop(result, "error", f"unknown loading path {scenario.path!r}; known: {', '.join(paths)}",
                    "unknown-path")
    if reason := _unknown_model(scenario.model):
        raise _stop(result, "error", reason, "unknown-model")
    if scenario.meta and not path.structural:
        raise _stop(result, "skipped", f"not applicable: {path.name} is not checked on the meta device "
                                       "(its loader needs tensor data)")
    try:
        reason = path.requires() or path.applies(scenario.model, scenario.override)
    except BrokenInstall as e:
        raise _stop(result, "error", str(e), "broken-install") from None
    if reason:
        raise _stop(result, "skipped", f"not applicable: {reason}")
    return path


def _source(scenario: Scenario, path: LoadingPath, cache: SourceCache, source_kwargs: dict, seed: int,
            result: Result) -> SourceModel:
    try:
        return cache.get(scenario.model, source_kwargs, seed, meta=scenario.meta)
    except Exception as e:
        if scenario.meta and (reason := meta_limitation(e)):
            raise _stop(result, "skipped", f"not checkable on the meta device: the build needs values: {reason}") \
                from None
        evidence = from_exception(e)
        result.evidence = evidence.to_json()
        name, message = classify(evidence, path.name)
        # The baseline cell owns the cause; every other cell of the model cannot run.
        if scenario.path == "create_model":
            raise _stop(result, "failed", message, name) from None
        raise _stop(result, "error", f"the source model cannot be built: {message}", "source-unbuildable") from None


def _load_and_judge(scenario: Scenario, path: LoadingPath, source: SourceModel, spec: dict,
                    result: Result, workarounds: tuple[str, ...] = ()) -> Evidence:
    with workdir(source.fp32_bytes) as folder, contextlib.ExitStack() as applied:
        for name in workarounds:  # undone in reverse, before the judge runs
            applied.callback(WORKAROUNDS[name].apply())
        builds = _builds(scenario, path, source)
        try:
            for tried, building in enumerate(builds, 1):
                context = building()
                try:
                    with context:
                        loaded = path.roundtrip(source.model, folder, spec)
                    break
                except Exception as e:
                    if scenario.meta and (reason := meta_limitation(e)):
                        if tried < len(builds):
                            continue
                        raise _stop(result, "skipped", f"not checkable on the meta device: {reason}") from None
                    return _built_with(from_exception(e), building)
        finally:
            applied.close()
        try:
            judge = path.check.judge
            if scenario.meta:  # what a load into a build wrote is seen only by the meta context it ran under
                written = context.wrote if path.loads_into_build else None  # every meta build is a MetaShapes
                judge = path.check.structure or partial(judge_structure, written=written)
            return _built_with(judge(source, loaded), building)
        except NotApplicable as e:
            raise _stop(result, "skipped", f"not applicable: {e}") from None
        finally:
            del loaded


def _built_with(evidence: Evidence, building: Callable[[], contextlib.AbstractContextManager]) -> Evidence:
    if building is MetaShapesCpuFactories:  # its repro builds for real: plain meta cannot build this model
        evidence.extra[META_BUILD] = "cpu-factories"
    return evidence


def _builds(scenario: Scenario, path: LoadingPath, source: SourceModel
            ) -> tuple[Callable[[], contextlib.AbstractContextManager], ...]:
    """Where the roundtrip's builds happen, in the order tried: on meta for a structural cell (where the source
    needed the CPU factories, there at once; source/meta.py says why); with quick random initialisers for a path
    whose builds are only loaded into (source/quick_init.py says why that proves the same)."""
    if scenario.meta:
        return (source.meta_context,) if source.meta_context is MetaShapesCpuFactories else META_BUILDS
    return (QuickInit if path.loads_into_build else contextlib.nullcontext,)


def _conclude(result: Result, evidence: Evidence, path: LoadingPath, spec: dict, input_size: tuple[int, ...],
              meta: bool = False, workarounds: tuple[str, ...] = ()) -> None:
    result.evidence = evidence.to_json()
    if evidence.clean:
        return
    result.status = "failed"
    result.signature, result.message = classify(evidence, path.name)
    result.repro = script(result.id, path, spec, input_size, result.versions, meta=meta,
                          meta_device="cpu" if evidence.extra.get(META_BUILD) else "meta", signature=result.signature,
                          workarounds=tuple(WORKAROUNDS[name].apply for name in workarounds),
                          raised_type=(evidence.exception or {}).get("type"))
    if is_limitation(result.signature):
        # An exporter that cannot handle the architecture at all: reported, but not a loading failure.
        result.status = "skipped"
        result.message = f"limitation, not a loading failure: {result.message}"


def behind_known(front: Result, steps: Sequence[Result], workarounds: Sequence[str]) -> Result:
    """A cell that failed with a known failure, and the same cell run again with that failure's workaround
    (`steps[0]`, with `workarounds[:1]`); where that run stopped at another known failure with a workaround of its
    own, again with both (`steps[1]`), and so on: one result keeping them all.

    The cell shows the deepest failure reached (its signature, message, evidence and repro), since a known failure
    excuses only itself: a run the last workaround did not get past ("not past it") reached the failure before it;
    a last run that passed leaves the first known failure as the cell's, checked in full behind it."""
    last = steps[-1]
    stuck = last.status == "failed" and last.signature == (steps[-2] if len(steps) > 1 else front).signature
    reached = len(steps) - (2 if stuck else 1)  # the step whose failure the cell shows; -1: the front's own
    front.behind = {"workaround": " + ".join(workarounds), "status": "not past it" if stuck else last.status,
                    "signature": last.signature, "message": last.message,
                    "front": {"signature": front.signature, "message": front.message}}
    if len(steps) > 1:  # the known failures passed on the way, each with the workaround applied next
        front.behind["through"] = [{"signature": step.signature, "workaround": name}
                                   for step, name in zip(steps[:-1], workarounds[1:], strict=True)]
    front.duration_s = round(front.duration_s + sum(step.duration_s for step in steps), 3)
    shown = steps[reached] if reached >= 0 else None
    if shown is not None and shown.status in ("failed", "error"):
        passed = zip((front, *steps[:reached]), workarounds[:reached + 1], strict=True)
        way = ", then ".join(f"{known.signature} (with {name})" for known, name in passed)
        front.status, front.signature = shown.status, shown.signature
        front.evidence, front.repro = shown.evidence, shown.repro
        front.message = f"behind the known {way}: {shown.message}"
    return front
