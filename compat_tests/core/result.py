"""Results: one JSON line per finished scenario, written the moment it finishes.

Several xdist workers append to one file; each record is one write() under an exclusive lock, and
is fsync'd, so a run that is killed keeps every scenario it finished.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
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


def append(path: Path, result: Result) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (result.to_json() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read(path: Path, run_id: str | None = None) -> Iterator[Result]:
    """Records of `path`, optionally of one run. A torn last line (a killed writer) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if run_id is None or data.get("run_id") == run_id:
                yield Result.from_dict(data)


def rotate(path: Path) -> None:
    """Keep the previous run's report beside the new one instead of appending to it."""
    if path.exists() and path.stat().st_size:
        path.replace(path.with_suffix(".prev.jsonl"))
