"""Reading reports strictly, merging shards, and diffing two runs: the data side of `timm-compat`.

`results.read` forgives anything (a live run's torn last line); the tools here are given files a person
chose, so anything but a torn *last* line is an error that names the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core import result as results
from ..core.result import FAILING, Result

PREV_NAME = "compat-report.prev.jsonl"


class ReportError(ValueError):
    """Input a report tool cannot use; the message says which file and what to do."""


def read_file(path: Path) -> list[Result]:
    if not path.is_file():
        raise ReportError(f"{path}: no such report file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot be read as a UTF-8 JSONL report ({e})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or not {"id", "model", "path", "override", "status"} <= set(data):
                raise ValueError("not a timm-compat record (needs id, model, path, override, status)")
            records.append(Result.from_dict(data))
        except (ValueError, TypeError) as e:
            if number == len(lines) and isinstance(e, json.JSONDecodeError):
                continue  # the torn last line of a killed run: everything before it is intact
            raise ReportError(f"{path}:{number}: {e}") from None
    return records


def report_files(target: Path) -> list[Path]:
    """The JSONL files an argument stands for: a file, or a directory's reports (searched recursively, as CI
    artifacts of several shards unpack into one folder each). The previous run's file is never included."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise ReportError(f"{target}: no such file or directory")
    direct = target / results.REPORT_NAME
    if direct.is_file():
        return [direct]
    found = sorted(p for p in target.rglob("*.jsonl") if not p.name.endswith(".prev.jsonl"))
    if not found:
        raise ReportError(f"{target}: no *.jsonl report in this directory (expected {results.REPORT_NAME})")
    return found


def load(targets: Sequence[str | Path]) -> list[Result]:
    """Every record of every target, merged (so shards and workers become one consistent report)."""
    if not targets:
        raise ReportError("no report given")
    return merge([read_file(f) for t in targets for f in report_files(Path(t))])


def previous(target: str | Path) -> Path | None:
    """The previous run's report beside a report directory or file, if the plugin kept one."""
    target = Path(target)
    prev = (target if target.is_dir() else target.parent) / PREV_NAME
    return prev if prev.is_file() else None


def _canonical(result: Result) -> str:
    return result.to_json()


def merge(inputs: Iterable[Iterable[Result]]) -> list[Result]:
    """One report from several: shards, xdist workers' files, or the same file twice.

    Order-independent and idempotent: the output is sorted by id; a scenario recorded by several runs
    keeps the newest run's record (run ids start with their UTC start time). Refuses input that cannot
    be one report: one run id with different library versions, or one run recording one scenario twice
    with different outcomes.
    """
    versions: dict[str, dict] = {}
    per_run: dict[tuple[str, str], Result] = {}
    for records in inputs:
        for r in records:
            seen = versions.setdefault(r.run_id, r.versions)
            if seen != r.versions:
                raise ReportError(
                    f"inconsistent input: run {r.run_id or '(no run id)'} has records with different versions "
                    f"({_versions(seen)} vs {_versions(r.versions)}); were files of different runs renamed or "
                    "edited? Merge only shards of one run, or reports with distinct run ids")
            old = per_run.get((r.id, r.run_id))
            if old is not None and (old.status, old.signature) != (r.status, r.signature):
                raise ReportError(
                    f"inconsistent input: run {r.run_id or '(no run id)'} recorded {r.id} twice, as {old.status} "
                    f"[{old.signature}] and as {r.status} [{r.signature}]")
            # Same outcome twice (a file given twice, a retried shard): keep one, chosen by content not order.
            per_run[(r.id, r.run_id)] = r if old is None else min(old, r, key=_canonical)
    chosen: dict[str, Result] = {}
    for (scenario_id, run_id), r in per_run.items():
        if scenario_id not in chosen or chosen[scenario_id].run_id < run_id:
            chosen[scenario_id] = r
    return [chosen[k] for k in sorted(chosen)]


def _versions(v: dict) -> str:
    return ", ".join(f"{k} {x}" for k, x in sorted(v.items()) if x) or "none"


def write(path: Path, records: Iterable[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")


GOOD = ("passed", "xpassed")


@dataclass
class Diff:
    # passing (or xpassing) in OLD, failing in NEW
    new_failures: list[tuple[Result | None, Result]] = field(default_factory=list)
    # failing in OLD, passing in NEW
    fixed: list[tuple[Result, Result | None]] = field(default_factory=list)
    # failing in both, under another signature
    changed: list[tuple[Result, Result]] = field(default_factory=list)
    # failing in NEW, not run (or skipped) in OLD: reported apart, since nothing says it ever worked
    new_scenarios_failing: list[Result] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.new_failures or self.fixed or self.changed or self.new_scenarios_failing)

    def ids(self) -> dict[str, list[str]]:
        return {
            "new_failures": [n.id for _, n in self.new_failures],
            "fixed": [o.id for o, _ in self.fixed],
            "changed": [o.id for o, _ in self.changed],
            "new_scenarios_failing": [n.id for n in self.new_scenarios_failing],
        }


def diff(old: Iterable[Result], new: Iterable[Result]) -> Diff:
    """What changed between two runs, by scenario id. diff(A, B).new_failures == diff(B, A).fixed."""
    before = {r.id: r for r in old}
    after = {r.id: r for r in new}
    result = Diff()
    for key in sorted(set(before) | set(after)):
        o, n = before.get(key), after.get(key)
        if n is not None and n.status in FAILING:
            if o is not None and o.status in GOOD:
                result.new_failures.append((o, n))
            elif o is not None and o.status in FAILING:
                if o.signature != n.signature:
                    result.changed.append((o, n))
            else:
                result.new_scenarios_failing.append(n)
        elif n is not None and n.status in GOOD and o is not None and o.status in FAILING:
            result.fixed.append((o, n))
    return result


def render_diff(d: Diff) -> list[str]:
    if d.empty:
        return ["no changes: the same scenarios fail, with the same signatures"]
    lines: list[str] = []
    if d.new_failures:
        lines.append(f"new failures ({len(d.new_failures)}):")
        lines += [f"  {n.id}  [{n.signature}] {n.message[:140]}" for _, n in d.new_failures]
    if d.new_scenarios_failing:
        lines.append(f"failing scenarios not in the old run ({len(d.new_scenarios_failing)}):")
        lines += [f"  {n.id}  [{n.signature}]" for n in d.new_scenarios_failing]
    if d.fixed:
        lines.append(f"fixed ({len(d.fixed)}):")
        lines += [f"  {o.id}  (was [{o.signature}])" for o, _ in d.fixed]
    if d.changed:
        lines.append(f"changed signature ({len(d.changed)}):")
        lines += [f"  {o.id}  {o.signature} -> {n.signature}" for o, n in d.changed]
    return lines
