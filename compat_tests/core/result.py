"""Results: one JSON line per finished scenario, written the moment it finishes, in the run's own file.

Each run writes `<report dir>/runs/<run id>.jsonl`; several xdist workers append to it, each record one
write() under an exclusive lock, so a run that is killed keeps every scenario it finished (what write() has
handed the kernel outlives the process). Records are fsync'd at most once a second and the run's own lines
always, so a machine that goes down loses at most the last second of cells. Besides
the cells, the file says what the run was: its start (the selection that chose its cells), its plan (the ids
of the cells it collected) and its end, which a killed run never writes. A finished run is copied to
`<report dir>/compat-report.jsonl`, so that file is always the latest complete run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .scenario import Scenario, parse_id
from .versions import installed

# `failed` is a new failure; `xfailed` a failure the known-failures baseline expects; `xpassed` a
# baseline scenario that now passes (its entry can go).
STATUSES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
# Statuses in which the library got the load wrong or the cell could not run.
FAILING = ("failed", "error", "xfailed")
REPORT_NAME = "compat-report.jsonl"
RUNS_DIR = "runs"
# The keys of the lines that describe the run rather than a cell (one key per line).
RUN_START, RUN_PLAN, RUN_END = "run_start", "run_plan", "run_end"
RUN_LINES = (RUN_START, RUN_PLAN, RUN_END)


@dataclass
class Result:
    id: str
    model: str
    path: str
    override: str
    status: str
    signature: str = ""
    message: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    duration_s: float = 0.0
    override_kwargs: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    repro: str = ""
    run_id: str = ""
    # The known-failures entry that turned this cell into xfailed/xpassed: {"id", "signature", "reason", "upstream"}.
    known: dict[str, Any] = field(default_factory=dict)
    # For a cell whose known failure has a workaround: the cell run again with it ({"workaround", "status",
    # "signature", "message", "front": the known failure's signature and message}), and with the workarounds of
    # known failures found behind it too ("workaround" then joins their names with " + "; "through" lists those
    # failures, [{"signature", "workaround"}]). When the deepest run fails otherwise, the cell's own signature,
    # message, evidence and repro are that failure's.
    behind: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")
        # A message is one line a maintainer can read in a table.
        self.message = " ".join(self.message.split())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def for_scenario(cls, scenario: Scenario | str, status: str, run_id: str, **fields: Any) -> Result:
        """A result of this run under the installed releases; a bare id is split into its parts (an id that
        is not a scenario's, like a crashed test's node, stands in for the model)."""
        if isinstance(scenario, Scenario):
            parts = {"id": scenario.id, "model": scenario.model, "path": scenario.path,
                     "override": scenario.override.name, "override_kwargs": scenario.describe()["override_kwargs"]}
        else:
            parsed = parse_id(scenario)
            parts = {"id": scenario, "model": parsed.model if parsed else scenario,
                     "path": parsed.path if parsed else "", "override": parsed.override if parsed else ""}
        return cls(**{**parts, **fields}, status=status, versions=installed(), run_id=run_id)


@dataclass
class RunLog:
    """What a report file says of one run that wrote into it."""

    run_id: str
    # The options that chose its cells (--models, --tier, --paths, --shard, ...); {} when not recorded.
    selection: dict[str, Any] = field(default_factory=dict)
    # The ids of the cells it collected; None when the file does not say (a report from before run lines).
    planned: list[str] | None = None
    # Whether it wrote its end line: a killed run never does.
    finished: bool = False
    # Where its workers' time went, from its end line: {"wall_s", "cells_s", "source_builds_s", "collection_s",
    # "restarts_s", "memory_waits_s", "idle_s", "other_s", "in_cells_share", "per_worker": {...}}; {} when not said.
    time: dict[str, Any] = field(default_factory=dict)

    def plan(self, ids: Iterable[str]) -> None:
        """Add cells to its plan (a resumed run, or shards of one run, plan in parts)."""
        self.planned = sorted(set(self.planned or ()) | set(ids))


def run_line(kind: str, run_id: str, **fields: Any) -> dict[str, Any]:
    return {kind: {"run_id": run_id, **fields}}


# When this process last fsync'd a run file. An fsync per cell was 3 ms of a 60 ms structural cell.
_SYNCED: dict[Path, float] = {}
SYNC_EVERY_S = 1.0


def _append_line(path: Path, line: bytes, sync: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        now = time.monotonic()
        if sync or now - _SYNCED.get(path, float("-inf")) >= SYNC_EVERY_S:
            os.fsync(fd)
            _SYNCED[path] = now
    finally:
        os.close(fd)  # closing releases the lock


def append(path: Path, result: Result) -> None:
    _append_line(path, (result.to_json() + "\n").encode())


def append_run_line(path: Path, line: dict[str, Any]) -> None:
    _append_line(path, (json.dumps(line, sort_keys=True, default=str) + "\n").encode(), sync=True)


def run_kind(data: Any) -> str | None:
    """Which run line a parsed JSONL line is (None for a cell's record)."""
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in RUN_LINES:
        return next(iter(data))
    return None


def add_run_line(runs: dict[str, RunLog], kind: str, body: dict[str, Any]) -> None:
    """Fold one run line into what is known of its run (lines come in file order)."""
    log = runs.setdefault(body["run_id"], RunLog(body["run_id"]))
    if kind == RUN_START:
        log.selection = dict(body.get("selection") or {})
        log.finished = False  # a resumed run starts again
    elif kind == RUN_PLAN:
        log.plan(body.get("ids") or ())
    else:
        log.finished = True
        log.time = dict(body.get("time") or {})


def read(path: Path, run_id: str | None = None) -> Iterator[Result]:
    """Cell records of `path`, optionally of one run. A torn last line (a killed writer) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if run_kind(data) is None and (run_id is None or data.get("run_id") == run_id):
                yield Result.from_dict(data)


def seconds_by_model(path: Path) -> dict[str, float]:
    """Each model's cell seconds in the records of `path`: a record's time counts the source build its cell made,
    so a model's first cell carries its source's build."""
    spent: dict[str, float] = {}
    for record in read(path):
        spent[record.model] = spent.get(record.model, 0.0) + record.duration_s
    return spent


def run_file(report_dir: Path, run_id: str) -> Path:
    return report_dir / RUNS_DIR / f"{run_id}.jsonl"


def side_dir(run_path: Path) -> Path:
    """The folder beside a run's file where its processes leave notes for each other (which models crashed a
    worker, each worker's time account, the memory gate's locks): `runs/<run id>.d/`."""
    return run_path.with_suffix(".d")


def run_files(report_dir: Path) -> list[Path]:
    """The runs kept in `report_dir`, oldest first (run ids start with their UTC start time)."""
    return sorted((report_dir / RUNS_DIR).glob("*.jsonl"))


def publish(report_dir: Path, run_id: str) -> Path:
    """Make a finished run the report directory's `compat-report.jsonl` (replaced atomically, so a reader
    never sees half of it)."""
    target = report_dir / REPORT_NAME
    partial = target.with_suffix(".jsonl.partial")
    partial.write_bytes(run_file(report_dir, run_id).read_bytes())
    partial.replace(target)
    return target


def prune(report_dir: Path, keep: int, current: str) -> list[Path]:
    """Delete all but the newest `keep` run files (never the current run's); returns what was deleted."""
    older = [f for f in run_files(report_dir) if f.stem != current]
    doomed = older[: max(0, len(older) - max(0, keep - 1))]
    for f in doomed:
        f.unlink(missing_ok=True)
    # Notes of runs whose file is gone (pruned now, or deleted by hand) are read by nobody.
    kept = {f.stem for f in run_files(report_dir)} | {current}
    for folder in (report_dir / RUNS_DIR).glob("*.d"):
        if folder.is_dir() and folder.stem not in kept:
            shutil.rmtree(folder, ignore_errors=True)
    return doomed
