"""Runs one scenario end to end and turns what happened into a Result. Never raises for a product
failure: the library's exceptions become evidence; only the harness's own bugs are `error`s."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
import time
import traceback

from . import repro, signatures, versions
from .evidence import Evidence, from_exception
from .meta import MetaShapes, meta_limitation
from .oracle import judge_structure
from .paths import all_paths
from .paths.base import NotApplicable
from .results import Result
from .scenario import Scenario
from .source import DEFAULT_SEED, SourceCache

# Saves go to RAM where the machine has it: the matrix writes thousands of checkpoints.
_RAM_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def _unknown_model(name: str) -> str | None:
    import timm

    if timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}: not in timm {versions.installed()['timm']}'s registry{hint}"


def run_scenario(scenario: Scenario, cache: SourceCache, run_id: str = "", seed: int = DEFAULT_SEED) -> Result:
    started = time.perf_counter()
    result = Result(id=scenario.id, model=scenario.model, path=scenario.path, override=scenario.override.name,
                    status="passed", versions=versions.installed(), run_id=run_id,
                    override_kwargs=scenario.describe()["override_kwargs"])
    try:
        _run(scenario, cache, seed, result)
    except Exception as e:  # a bug of the harness itself: say so, never blame the library
        result.status, result.signature = "error", f"harness-error:{type(e).__name__}"
        result.message = f"timm-compat itself failed: {e!r} ({traceback.format_exc(limit=-1).strip()})"
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def _run(scenario: Scenario, cache: SourceCache, seed: int, result: Result) -> None:
    paths = all_paths()
    path = paths.get(scenario.path)
    if path is None:
        result.status, result.signature = "error", "unknown-path"
        result.message = f"unknown loading path {scenario.path!r}; known: {', '.join(paths)}"
        return
    if reason := _unknown_model(scenario.model):
        result.status, result.signature, result.message = "error", "unknown-model", reason
        return
    if scenario.meta and not path.structural:
        result.status = "skipped"
        result.message = f"not applicable: {path.name} is not checked on the meta device (its loader needs tensor data)"
        return
    if reason := path.requires() or path.applies(scenario.model, scenario.override):
        result.status, result.message = "skipped", f"not applicable: {reason}"
        return

    source_kwargs = path.source_kwargs(scenario.override)
    spec = {"name": scenario.model, "kwargs": scenario.override.as_dict(), "seed": seed,
            "source_kwargs": source_kwargs}
    try:
        source = cache.get(scenario.model, source_kwargs, seed, meta=scenario.meta)
    except Exception as e:
        if scenario.meta and (reason := meta_limitation(e)):
            result.status = "skipped"
            result.message = f"not checkable on the meta device: the build needs values: {reason}"
            return
        evidence = from_exception(e)
        # The baseline cell owns the cause; every other cell of the model cannot run.
        result.status = "failed" if scenario.path == "create_model" else "error"
        name, message = signatures.classify(evidence, path.signatures)
        result.signature = name if result.status == "failed" else "source-unbuildable"
        result.message = message if result.status == "failed" else f"the source model cannot be built: {message}"
        result.evidence = evidence.to_json()
        return

    with tempfile.TemporaryDirectory(prefix="timm-compat-", dir=_RAM_DIR) as workdir:
        try:
            with MetaShapes() if scenario.meta else contextlib.nullcontext():
                loaded = path.roundtrip(source.model, workdir, spec)
        except Exception as e:
            if scenario.meta and (reason := meta_limitation(e)):
                result.status, result.message = "skipped", f"not checkable on the meta device: {reason}"
                return
            evidence = from_exception(e)
        else:
            try:
                evidence = (judge_structure if scenario.meta else path.judge)(source, loaded)
            except NotApplicable as e:
                result.status, result.message = "skipped", f"not applicable: {e}"
                return
            finally:
                del loaded
    _conclude(result, evidence, path, spec, source.input_size, scenario.meta)


def _conclude(result: Result, evidence: Evidence, path, spec: dict, input_size: tuple[int, ...],
              meta: bool = False) -> None:
    result.evidence = evidence.to_json()
    if evidence.clean:
        return
    result.status = "failed"
    result.signature, result.message = signatures.classify(evidence, path.signatures)
    result.repro = repro.script(result.id, path, spec, input_size, result.versions, meta=meta)
    if signatures.is_limitation(result.signature, path.signatures):
        # An exporter that cannot handle the architecture at all: reported, but not a loading failure.
        result.status = "skipped"
        result.message = f"limitation, not a loading failure: {result.message}"
