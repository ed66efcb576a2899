"""The pytest plugin: the matrix's options, and the wiring of the run's parts into pytest's hooks.

Loaded by the repository's conftest.py. It stays inert in runs that collect no matrix cells (the suite's own
tests), except for registering its options. What each part does lives in its own package: the plan of
cells in run/plan.py, isolation in run/isolation.py, progress in run/progress.py, the summary in report/.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

# Before anything imports huggingface_hub: this suite never reaches a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

from .core import result as results  # noqa: E402
from .core.scenario import Scenario  # noqa: E402
from .core.versions import installed  # noqa: E402
from .paths.support.overrides import SHARED_FACTS_DIR, share_facts  # noqa: E402
from .paths.support.workarounds import WORKAROUNDS  # noqa: E402
from .report import summary  # noqa: E402
from .run.environment import drift  # noqa: E402
from .run.isolation import Isolation  # noqa: E402
from .run.memory import MemoryBudgetError, parse_size  # noqa: E402
from .run.plan import Options, Plan, make_plan, selected_paths  # noqa: E402
from .run.progress import Progress, RunTime  # noqa: E402
from .run.resume import last_run  # noqa: E402
from .run.selection import SelectionError, parse_count, split_globs  # noqa: E402
from .run.session import MatrixSession, new_run_id  # noqa: E402
from .run.sharding import ShardError, parse_shard  # noqa: E402
from .run.tiers import SMOKE, TIERS  # noqa: E402
from .run.workdirs import sweep  # noqa: E402
from .run.workers import Clock, XdistHooks, threads_per_worker, tune_collector, worker_run_id  # noqa: E402
from .signatures import known_failures  # noqa: E402

MATRIX_DIR = Path(__file__).resolve().parent
_PLAN = pytest.StashKey[Plan]()
_RUN_ID = pytest.StashKey[str]()
_BASELINE = pytest.StashKey[known_failures.Baseline]()
_PLANNED = pytest.StashKey[bool]()
_RESUMED = pytest.StashKey[tuple[str | None, set[str]]]()
_TIME = pytest.StashKey[dict]()


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
    group.addoption("--report-dir", default="reports",
                    help="where each run writes runs/<run id>.jsonl; a finished run becomes compat-report.jsonl")
    group.addoption("--keep-runs", default=10, type=int,
                    help="how many runs to keep in <report-dir>/runs (default 10; older ones are deleted)")
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
    group.addoption("--memory-budget", default=None,
                    help="the most memory a cell may count on, e.g. 8G (default: what the machine has available); "
                         "a cell whose model needs more is skipped with the figures before it is built")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _runs_matrix(config: pytest.Config) -> bool:
    for arg in config.args:
        target = Path(str(arg).split("::")[0]).resolve()
        if target == MATRIX_DIR or MATRIX_DIR in target.parents or target in MATRIX_DIR.parents:
            return True
    return False


def report_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("report_dir")).resolve()


def run_path(config: pytest.Config) -> Path:
    """This run's own file: every record of the run, and only of this run, goes there."""
    return results.run_file(report_dir(config), config.stash[_RUN_ID])


def _options(config: pytest.Config) -> Options:
    return Options(**{name: config.getoption(name) for name in Options.__dataclass_fields__})


def _baseline_file(config: pytest.Config) -> str | None:
    given = config.getoption("known_failures")
    if given is None:
        return str(known_failures.DEFAULT_FILE) if known_failures.DEFAULT_FILE.is_file() else None
    return given


def _check_options(config: pytest.Config) -> None:
    """Bad input is refused before collection, with one clear line, and recorded so the report shows it."""
    try:
        if config.getoption("max_params") is not None:
            parse_count(config.getoption("max_params"))
        selected_paths(config.getoption("paths"))
        if config.getoption("shard"):
            parse_shard(config.getoption("shard"))
        if config.getoption("memory_budget") is not None:
            parse_size(config.getoption("memory_budget"))
        config.stash[_BASELINE] = baseline = known_failures.load(_baseline_file(config))
        if unknown := sorted({n for e in baseline.entries if (n := e.workaround_name) and n not in WORKAROUNDS}):
            raise known_failures.KnownFailuresError(
                f"{baseline.source}: unknown workaround(s) {', '.join(unknown)}; known: {', '.join(WORKAROUNDS)} "
                "(or say \"none: <why>\")")
    except (SelectionError, ShardError, MemoryBudgetError, known_failures.KnownFailuresError) as e:
        if not _is_worker(config):
            results.append(run_path(config), results.Result.for_scenario(
                "invocation", "error", config.stash.get(_RUN_ID, ""), model="", signature="bad-input",
                message=str(e)))
        raise pytest.UsageError(str(e)) from None


def pytest_configure(config: pytest.Config) -> None:
    # A tox env whose releases drifted from its promise (TIMM_COMPAT_EXPECT) would test others: refuse to start.
    if _runs_matrix(config) and (line := drift()):
        raise pytest.UsageError(line)
    # The run --resume continues and the cells it finished: read once, here, for collection and the plan too.
    config.stash[_RESUMED] = last_run(report_dir(config)) if getattr(config.option, "resume", False) else (None, set())
    resumed = config.stash[_RESUMED][0]
    if _is_worker(config):
        config.stash[_RUN_ID] = worker_run_id(config) or new_run_id()
    else:
        # A resumed run keeps the interrupted run's id, so its report and summary cover both halves.
        config.stash[_RUN_ID] = resumed or new_run_id()
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(lambda: config.stash[_RUN_ID], lambda ids: _planned(config, ids)),
                                          "timm-compat-xdist")
    if not _runs_matrix(config):
        return
    _check_options(config)
    config.pluginmanager.register(Isolation(run_path(config), lambda: config.stash[_RUN_ID]), "timm-compat-isolation")
    side = results.side_dir(run_path(config))
    if clock := Clock.for_config(config, side):
        config.pluginmanager.register(clock, "timm-compat-clock")
    if _is_worker(config):
        share_facts(side / SHARED_FACTS_DIR)
        return
    # Only this run's own builds, and only while it collects (a resumed run may run on other releases).
    shutil.rmtree(side / SHARED_FACTS_DIR, ignore_errors=True)
    config.pluginmanager.register(RunTime(side), "timm-compat-time")
    if not resumed:
        # Other runs' files are never appended to: an ad-hoc run leaves the last real one whole in runs/.
        results.append_run_line(run_path(config), results.run_line(
            results.RUN_START, config.stash[_RUN_ID], selection=asdict(_options(config)), versions=installed()))
    results.prune(report_dir(config), config.getoption("keep_runs"), config.stash[_RUN_ID])
    sweep()  # what a run killed before this one left in RAM
    if "cross_version" in selected_paths(config.getoption("paths"), config.getoption("tier")):
        _fill_pickle_cache(config)
    every = config.getoption("progress_every")
    if every and every > 0:
        expected = {r.id: r.duration_s for r in results.read(report_dir(config) / results.REPORT_NAME)}
        config.pluginmanager.register(Progress(config, every, expected), "timm-compat-progress")


def _fill_pickle_cache(config: pytest.Config) -> None:
    """The older releases' pickles are generated into a cache, not committed: a fresh clone refills it here, once,
    before any worker starts (minutes per release; it says so). What cannot be refilled (no package registry)
    stays absent, and each cell needing it is an error saying how to generate it, never a silent skip."""
    from .paths.support import snapshots

    def say(line: str) -> None:
        # The terminal reporter may not be registered yet at configure time: stderr, flushed, since minutes pass
        # between these lines and a CI log must show them as they come.
        print(f"timm-compat: {line}", file=sys.stderr, flush=True)

    # Only what this run can read: its --models globs, the smoke list, or (the other tiers) the whole registry.
    # --exclude and --max-params are left to collection: a few pickles too many cost less than a second pass.
    models = split_globs(config.getoption("models")) or (
        list(SMOKE) if config.getoption("tier") == "smoke" else None)
    for producer, problem in snapshots.ensure_pickles(snapshots.producers(), say, models).items():
        say(f"{producer}: the pickle cache could not be generated: {problem}")


def _planned(config: pytest.Config, ids: list[str]) -> None:
    """The cells this run collected, written once into its file: what a report of it is checked against."""
    if config.stash.get(_PLANNED, False):
        return
    config.stash[_PLANNED] = True
    if getattr(config.option, "resume", False):
        ids = [*ids, *config.stash[_RESUMED][1]]  # the cells the first half already recorded
    results.append_run_line(run_path(config), results.run_line(results.RUN_PLAN, config.stash[_RUN_ID],
                                                               ids=sorted(set(ids))))


def _plan(config: pytest.Config) -> Plan:
    if _PLAN not in config.stash:
        config.stash[_PLAN] = make_plan(_options(config), getattr(config, "cache", None))
    return config.stash[_PLAN]


def _scenario_of(item: pytest.Item) -> Scenario | None:
    return getattr(getattr(item, "callspec", None), "params", {}).get("scenario")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _runs_matrix(config):
        return
    if not config.getoption("resume", False):
        return
    run_id, finished = config.stash[_RESUMED]
    if run_id != config.stash.get(_RUN_ID, None):
        return
    keep, done = [], []
    for item in items:
        scenario = _scenario_of(item)
        (done if scenario is not None and scenario.id in finished else keep).append(item)
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    # After every deselection (-k, --resume). Under xdist the controller collects nothing: XdistHooks hears the
    # workers instead.
    if not _runs_matrix(session.config):
        return
    if not _is_worker(session.config):
        _planned(session.config, [s.id for item in session.items if (s := _scenario_of(item)) is not None])
    tune_collector(all(s.meta for s in _plan(session.config).scenarios))


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
    budget = config.getoption("memory_budget")
    return MatrixSession(run_id=config.stash[_RUN_ID], report=run_path(config), skip_models=plan.skip_models,
                         memory_budget=parse_size(budget) if budget is not None else None)


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
    sweep()
    shutil.rmtree(results.side_dir(run_path(config)) / SHARED_FACTS_DIR, ignore_errors=True)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        # Only a run that went through all its cells ends, and only such a run becomes compat-report.jsonl;
        # an interrupted one stays in runs/ as "never finished" (`--resume` continues it).
        results.append_run_line(run_path(config), results.run_line(results.RUN_END, config.stash[_RUN_ID],
                                                                   exitstatus=int(session.exitstatus),
                                                                   time=_run_time(config)))
        results.publish(report_dir(config), config.stash[_RUN_ID])


def _run_time(config: pytest.Config) -> dict:
    """Where the run's time went (run/progress.py RunTime), summed once when the run ends."""
    if _TIME not in config.stash:
        clock = config.pluginmanager.get_plugin("timm-compat-time")
        config.stash[_TIME] = clock.figures() if clock is not None else {}
    return config.stash[_TIME]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config) or not _runs_matrix(config):
        return
    path = run_path(config)
    recorded = list(results.read(path, config.stash[_RUN_ID]))
    if not recorded:
        return
    versions = ", ".join(f"{k} {v}" for k, v in recorded[0].versions.items() if v)
    terminalreporter.section(f"timm-compat summary ({versions})")
    baseline = config.stash.get(_BASELINE, known_failures.Baseline())
    for line in summary.render(recorded, expired=baseline.expired, baseline_file=baseline.source,
                               time=_run_time(config)):
        terminalreporter.write_line(line)
    published = report_dir(config) / results.REPORT_NAME
    terminalreporter.write_line(f"report: {published if published.is_file() else path}")
