"""The pytest plugin that turns options into the matrix, records every cell, and prints the summary.

Loaded by the repository's conftest.py. It stays inert in runs that collect no matrix cells
(the suite's own tests), except for registering its options.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

# Before anything imports huggingface_hub: this suite never reaches a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

from . import known_failures, results, summary  # noqa: E402
from .isolation import Isolation  # noqa: E402
from .paths import all_paths  # noqa: E402
from .resume import last_run  # noqa: E402
from .scenario import BASE, Scenario, sample_overrides  # noqa: E402
from .selection import SelectionError, parse_count, select, split_globs  # noqa: E402
from .session import MatrixSession, new_run_id, threads_per_worker  # noqa: E402
from .sharding import ShardError, parse_shard, recorded_durations, select_shard  # noqa: E402
from .tiers import TIERS  # noqa: E402
from .versions import installed  # noqa: E402

MATRIX_DIR = Path(__file__).resolve().parent
_PLAN = pytest.StashKey["Plan"]()
_RUN_ID = pytest.StashKey[str]()
_BASELINE = pytest.StashKey[known_failures.Baseline]()


@dataclass
class Plan:
    scenarios: list[Scenario] = field(default_factory=list)
    skip_models: dict[str, str] = field(default_factory=dict)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("timm-compat", "timm-compat matrix")
    group.addoption("--models", default=None,
                    help="comma-separated fnmatch globs over timm.list_models(), e.g. 'resnet*,vit_small_*'")
    group.addoption("--exclude", default=None, help="comma-separated globs of models to leave out")
    group.addoption("--tier", default="smoke", choices=TIERS,
                    help="model list when --models is not given: smoke (curated, default), full (registry) or "
                         "structural (registry, meta device: keys/shapes/dtypes of the paths that can run there)")
    group.addoption("--max-params", default=None,
                    help="skip models with more parameters than this, e.g. 30M (counted on the meta device)")
    group.addoption("--paths", default=None, help="comma-separated loading paths (default: all)")
    group.addoption("--report-dir", default="reports", help="where compat-report.jsonl is written")
    group.addoption("--known-failures", default=None,
                    help="TOML baseline of expected failures (default: fixtures/known_failures.toml when present; "
                         "'' for none): matching failures are xfailed, listed scenarios that pass are xpassed")
    group.addoption("--resume", action="store_true",
                    help="continue the last run in --report-dir: skip the scenarios it already recorded")
    group.addoption("--shard", default=None,
                    help="run shard I of N (e.g. 2/4): deterministic, balanced by recorded durations, models whole")
    group.addoption("--shard-durations", default=None,
                    help="comma-separated earlier JSONL reports whose durations balance --shard")
    group.addoption("--explore", default=0, type=int,
                    help="per model, let hypothesis draw N override combinations on pretrained_file; a failure is "
                         "shrunk to its smallest combination and recorded as an ordinary cell")
    group.addoption("--progress-every", default=60.0, type=float,
                    help="seconds between 'N scenarios remain' lines on long runs (0: never)")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _runs_matrix(config: pytest.Config) -> bool:
    for arg in config.args:
        target = Path(str(arg).split("::")[0]).resolve()
        if target == MATRIX_DIR or MATRIX_DIR in target.parents or target in MATRIX_DIR.parents:
            return True
    return False


def report_path(config: pytest.Config) -> Path:
    return Path(config.getoption("report_dir")).resolve() / results.REPORT_NAME


def _record_bad_input(config: pytest.Config, message: str) -> None:
    results.append(report_path(config), results.Result(
        id="invocation", model="", path="", override="", status="error", signature="bad-input",
        message=message, versions=installed(), run_id=config.stash.get(_RUN_ID, "")))


def _selected_paths(config: pytest.Config) -> list[str]:
    known = all_paths()
    wanted = split_globs(config.getoption("paths")) or [name for name, p in known.items() if p.default]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise SelectionError(f"--paths: unknown path(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return wanted


def _baseline_file(config: pytest.Config) -> str | None:
    given = config.getoption("known_failures")
    if given is None:
        return str(known_failures.DEFAULT_FILE) if known_failures.DEFAULT_FILE.is_file() else None
    return given


class _XdistHooks:
    """Hands the controller's run id to every worker, so all their records belong to one run."""

    @pytest.hookimpl
    def pytest_configure_node(self, node) -> None:
        node.workerinput["timm_compat_run_id"] = node.config.stash[_RUN_ID]

    @pytest.hookimpl
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        progress = node.config.pluginmanager.get_plugin("timm-compat-progress")
        if progress is not None:
            progress.total = len(ids)


class _Progress:
    """On the controller: every `every` seconds, how many scenarios are done and how many remain."""

    def __init__(self, config: pytest.Config, every: float) -> None:
        self.config, self.every = config, every
        self.total: int | None = None
        self.done = 0
        self.started = self.last = time.monotonic()

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.total is None and session.items:  # without xdist; with it, the node hook sets the total
            self.total = len(session.items)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        self.done += 1
        now = time.monotonic()
        if not self.total or now - self.last < self.every or self.done >= self.total:
            return
        self.last = now
        remain = self.total - self.done
        eta = (now - self.started) / self.done * remain
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write("\n")  # progress dots/percentages do not end their line
            terminal.write_line(f"timm-compat: {self.done}/{self.total} scenarios done, {remain} remain "
                                f"(~{eta / 60:.1f} min left)")


def pytest_configure(config: pytest.Config) -> None:
    resumed = None
    if getattr(config.option, "resume", False):
        resumed, _ = last_run(report_path(config))
    if _is_worker(config):
        config.stash[_RUN_ID] = config.workerinput.get("timm_compat_run_id", new_run_id())
    else:
        # A resumed run keeps the interrupted run's id, so its report and summary cover both halves.
        config.stash[_RUN_ID] = resumed or new_run_id()
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(), "timm-compat-xdist")
    if not _runs_matrix(config):
        return
    try:
        if config.getoption("max_params") is not None:
            parse_count(config.getoption("max_params"))
        _selected_paths(config)
        if config.getoption("shard"):
            parse_shard(config.getoption("shard"))
        config.stash[_BASELINE] = known_failures.load(_baseline_file(config))
    except (SelectionError, ShardError, known_failures.KnownFailuresError) as e:
        if not _is_worker(config):
            _record_bad_input(config, str(e))
        raise pytest.UsageError(str(e)) from None
    config.pluginmanager.register(Isolation(report_path(config), lambda: config.stash[_RUN_ID]),
                                  "timm-compat-isolation")
    if not _is_worker(config) and not resumed:
        results.rotate(report_path(config))
        every = config.getoption("progress_every")
        if every and every > 0:
            config.pluginmanager.register(_Progress(config, every), "timm-compat-progress")


def _plan(config: pytest.Config) -> Plan:
    if _PLAN in config.stash:
        return config.stash[_PLAN]
    import timm

    max_params = config.getoption("max_params")
    counts = _ParamCounts(config)
    selection = select(
        timm.list_models(),
        models=config.getoption("models"),
        exclude=config.getoption("exclude"),
        tier=config.getoption("tier"),
        max_params=parse_count(max_params) if max_params is not None else None,
        count=counts,
    )
    counts.save()
    paths = all_paths()
    plan = Plan()
    # A default run (no --paths) is a smoke run: each override axis is sampled, rotating across the
    # models so the tier still covers every override; naming a path runs its whole grid.
    sample = not config.getoption("paths")
    structural = config.getoption("tier") == "structural"
    chosen = _selected_paths(config)
    if structural and sample:
        chosen = [name for name in chosen if paths[name].structural and paths[name].structural_default]
    for index, model in enumerate(selection.models):
        for name in chosen:
            if structural and not paths[name].structural:
                plan.scenarios.append(Scenario(model, name, BASE, meta=True))  # one cell saying why not
                continue
            if structural and sample:
                # Few cells per path by default (its base, or a foreign path's first layout): every further
                # cell builds the model again, and the whole registry has to fit in minutes.
                plan.scenarios += [Scenario(model, name, o, meta=True) for o in paths[name].structural_cells(model)]
                continue
            overrides = paths[name].overrides(model)
            if sample and paths[name].sampled:
                overrides = sample_overrides(overrides, index)
            plan.scenarios += [Scenario(model, name, o, meta=structural) for o in overrides]
    if config.getoption("explore") and "pretrained_file" in chosen:
        plan.scenarios += _explored(selection.models, config.getoption("explore"))
    # Bad or inapplicable input is still a recorded cell, so the report shows it.
    plan.scenarios += [Scenario(pattern, "create_model") for pattern in selection.unknown]
    timm_version = installed()["timm"]
    for model in selection.absent:
        plan.skip_models[model] = f"not applicable: timm {timm_version} has no {model} (the smoke tier lists it)"
    for model, size in selection.too_large.items():
        plan.skip_models[model] = f"skipped: {size / 1e6:.1f}M parameters > --max-params {max_params}"
    plan.scenarios += [Scenario(model, "create_model") for model in plan.skip_models]
    if config.getoption("shard"):
        durations = recorded_durations(Path(p) for p in split_globs(config.getoption("shard_durations")))
        plan.scenarios = select_shard(plan.scenarios, config.getoption("shard"), durations)
    config.stash[_PLAN] = plan
    return plan


def _explored(models: list[str], n: int) -> list[Scenario]:
    """Shrunk failing override combinations, found by running cells now. Derandomized, so every xdist
    worker collects the same cells (each explores on its own: --explore is an opt-in cost)."""
    from .explore import explore
    from .runner import run_scenario
    from .source import SourceCache

    cache = SourceCache()
    found: list[Scenario] = []
    for model in models:
        def passes(override, model=model) -> bool:
            return run_scenario(Scenario(model, "pretrained_file", override), cache).status != "failed"

        found += [Scenario(model, "pretrained_file", o) for o in explore(model, n, passes)]
    return found


class _ParamCounts:
    """Parameter counts are costly for the whole registry: kept in pytest's cache per timm release, and
    written back once after selection rather than once per model."""

    def __init__(self, config: pytest.Config) -> None:
        self.cache = getattr(config, "cache", None)
        self.key = f"timm-compat/param-counts/{installed()['timm']}"
        self.counts: dict[str, int | None] = dict(self.cache.get(self.key, {}) if self.cache else {})
        self.added = False

    def __call__(self, name: str) -> int | None:
        from .selection import count_params_meta

        if name not in self.counts:
            self.counts[name] = count_params_meta(name)
            self.added = True
        return self.counts[name]

    def save(self) -> None:
        if self.cache and self.added:
            self.cache.set(self.key, self.counts)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("resume", False) or not _runs_matrix(config):
        return
    run_id, finished = last_run(report_path(config))
    if run_id != config.stash.get(_RUN_ID, None):
        return
    keep, done = [], []
    for item in items:
        scenario = getattr(getattr(item, "callspec", None), "params", {}).get("scenario")
        (done if scenario is not None and scenario.id in finished else keep).append(item)
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = keep


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" not in metafunc.fixturenames:
        return
    try:
        plan = _plan(metafunc.config)
    except SelectionError as e:
        raise pytest.UsageError(str(e)) from None
    metafunc.parametrize(
        "scenario",
        [pytest.param(s, id=s.id, marks=pytest.mark.xdist_group(s.model)) for s in plan.scenarios],
    )


@pytest.fixture(scope="session")
def matrix_session(request: pytest.FixtureRequest) -> MatrixSession:
    config = request.config
    if _is_worker(config):
        import torch

        torch.set_num_threads(threads_per_worker(config.workerinput.get("workercount", 1)))
    plan = config.stash.get(_PLAN, Plan())
    return MatrixSession(run_id=config.stash[_RUN_ID], report=report_path(config), skip_models=plan.skip_models)


@pytest.fixture(scope="session")
def known_failures_baseline(request: pytest.FixtureRequest) -> known_failures.Baseline:
    return request.config.stash.get(_BASELINE, known_failures.Baseline())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config) or not _runs_matrix(config):
        return
    # An expired entry fails the run even when everything else is green: the baseline must be revisited.
    if config.stash.get(_BASELINE, known_failures.Baseline()).expired and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config) or not _runs_matrix(config):
        return
    path = report_path(config)
    recorded = list(results.read(path, config.stash[_RUN_ID]))
    if not recorded:
        return
    versions = ", ".join(f"{k} {v}" for k, v in recorded[0].versions.items() if v)
    terminalreporter.section(f"timm-compat summary ({versions})")
    baseline = config.stash.get(_BASELINE, known_failures.Baseline())
    for line in summary.render(recorded, expired=baseline.expired, baseline_file=baseline.source):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {path}")
