"""Reading reports strictly, merging shards, and diffing two runs: the data side of `timm-compat`.

`results.read` forgives anything (a live run's torn last line); the tools here are given files a person
chose, so anything but a torn *last* line is an error that names the file and line, and a torn last line,
a run that never wrote its end, or planned cells without a record make the report incomplete, said so
and never passed off as a clean run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core import result as results
from ..core.result import FAILING, Result, RunLog

# What older versions of the suite kept beside compat-report.jsonl for the run before.
PREV_NAME = "compat-report.prev.jsonl"


class ReportError(ValueError):
    """Input a report tool cannot use; the message says which file and what to do."""


@dataclass
class Report:
    """Cell records from one or more report files, and what those files say of the runs that wrote them."""

    records: list[Result] = field(default_factory=list)
    runs: dict[str, RunLog] = field(default_factory=dict)
    # Files whose last line is cut off: the run writing them was killed mid-line.
    torn: list[Path] = field(default_factory=list)

    def planned(self) -> set[str] | None:
        """Every cell the runs collected, when each run said (reports from before run lines do not)."""
        if not self.runs or any(run.planned is None for run in self.runs.values()):
            return None
        return {i for run in self.runs.values() for i in run.planned or ()}

    def selections(self) -> list[dict]:
        return [run.selection for run in self.runs.values() if run.selection]

    def problems(self) -> list[str]:
        """Why this is not the whole of its runs, one line each; empty for a complete report."""
        found = [f"{f}: the last line is cut off: the run writing it was killed" for f in self.torn]
        recorded = {r.id for r in self.records}
        for run in self.runs.values():
            missing = [i for i in run.planned or () if i not in recorded]
            if not run.finished:
                found.append(f"run {run.run_id} never finished (killed, or still running)"
                             + (f": {len(missing)} of its {len(run.planned or ())} cells have no record" if missing
                                else ""))
            elif missing:
                found.append(f"run {run.run_id}: {len(missing)} of its {len(run.planned or ())} cells have no record, "
                             f"e.g. {', '.join(missing[:3])}")
        return found


def read_report(path: Path) -> Report:
    if not path.is_file():
        raise ReportError(f"{path}: no such report file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot be read as a UTF-8 JSONL report ({e})") from None
    report = Report()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if kind := results.run_kind(data):
                results.add_run_line(report.runs, kind, data[kind])
                continue
            if not isinstance(data, dict) or not {"id", "model", "path", "override", "status"} <= set(data):
                raise ValueError("not a timm-compat record (needs id, model, path, override, status)")
            report.records.append(Result.from_dict(data))
        except (ValueError, TypeError, KeyError) as e:
            if number == len(lines) and isinstance(e, json.JSONDecodeError):
                report.torn.append(path)  # the killed run's last line: everything before it is intact
                continue
            raise ReportError(f"{path}:{number}: {e}") from None
    return report


def read_file(path: Path) -> list[Result]:
    return read_report(path).records


def _report_of(folder: Path) -> list[Path]:
    """A report directory's latest complete run (`compat-report.jsonl`), else its newest run, else its JSONL
    files; never the history kept in `runs/`."""
    if (folder / results.REPORT_NAME).is_file():
        return [folder / results.REPORT_NAME]
    if runs := results.run_files(folder):
        return [runs[-1]]
    return sorted(p for p in folder.glob("*.jsonl") if not p.name.endswith(".prev.jsonl"))


def report_files(target: Path) -> list[Path]:
    """The JSONL files an argument stands for: a file, a report directory's report, or else the reports found
    below it (CI artifacts of several shards unpack into one folder each)."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise ReportError(f"{target}: no such file or directory")
    found = _report_of(target)
    if not found:
        folders = {p.parent.parent if p.parent.name == results.RUNS_DIR else p.parent for p in target.rglob("*.jsonl")}
        found = [f for folder in sorted(folders) for f in _report_of(folder)]
    if not found:
        raise ReportError(f"{target}: no *.jsonl report in this directory (expected {results.REPORT_NAME})")
    return found


def load(targets: Sequence[str | Path]) -> Report:
    """Every record of every target, merged (so shards and workers become one consistent report)."""
    if not targets:
        raise ReportError("no report given")
    parts = [read_report(f) for t in targets for f in report_files(Path(t))]
    report = Report(merge(p.records for p in parts), torn=[f for p in parts for f in p.torn])
    for part in parts:
        for run in part.runs.values():
            known = report.runs.setdefault(run.run_id, RunLog(run.run_id, run.selection))
            if run.planned is not None:
                known.plan(run.planned)
            known.finished = known.finished or run.finished
    return report


def previous(target: str | Path, current: Report | None = None) -> Path | None:
    """The run before `current` beside a report directory or file: the newest finished run kept in `runs/` that
    is older than `current`'s, preferring one of the same selection (an ad-hoc run between two nightlies is not
    the nightly's "previous"); else what older versions of the suite kept (compat-report.prev.jsonl)."""
    target = Path(target)
    folder = target if target.is_dir() else target.parent
    mine = (set(current.runs) | {r.run_id for r in current.records}) if current else set()
    wanted = current.selections() if current else []
    candidates = []
    for file in reversed(results.run_files(folder)):
        if file.stem in mine or (mine and file.stem > max(mine)):
            continue
        runs = read_report(file).runs.values()
        if any(run.finished for run in runs):
            if not wanted or [run.selection for run in runs if run.selection] == wanted:
                return file
            candidates.append(file)
    if candidates:
        return candidates[0]
    prev = folder / PREV_NAME
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


def dumps(records: Iterable[Result], runs: Iterable[RunLog] = ()) -> str:
    """A report file's text: what it says of its runs first, then one line per cell."""
    lines = []
    for run in runs:
        lines.append(results.run_line(results.RUN_START, run.run_id, selection=run.selection))
        if run.planned is not None:
            lines.append(results.run_line(results.RUN_PLAN, run.run_id, ids=run.planned))
        if run.finished:
            lines.append(results.run_line(results.RUN_END, run.run_id))
    return "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines) + "".join(r.to_json() + "\n"
                                                                                     for r in records)


def write(path: Path, records: Iterable[Result], runs: Iterable[RunLog] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(records, runs), encoding="utf-8")


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
    # in OLD, absent from NEW although NEW's selection covers them: NEW was cut short, nothing says how they fare
    not_run: list[Result] = field(default_factory=list)
    # in OLD, outside the cells NEW selected (the runs chose other cells on purpose): listed, not a problem
    not_selected: list[Result] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.new_failures or self.fixed or self.changed or self.new_scenarios_failing or self.not_run)

    def ids(self) -> dict[str, list[str]]:
        return {
            "new_failures": [n.id for _, n in self.new_failures],
            "fixed": [o.id for o, _ in self.fixed],
            "changed": [o.id for o, _ in self.changed],
            "new_scenarios_failing": [n.id for n in self.new_scenarios_failing],
            "not_run": [o.id for o in self.not_run],
            "not_selected": [o.id for o in self.not_selected],
        }


def _report(records: Report | Iterable[Result]) -> Report:
    return records if isinstance(records, Report) else Report(list(records))


def diff(old: Report | Iterable[Result], new: Report | Iterable[Result]) -> Diff:
    """What changed between two runs, by scenario id. diff(A, B).new_failures == diff(B, A).fixed.

    A scenario of OLD that NEW has no record of is `not_selected` when NEW's runs did not plan it (or, for
    reports that do not list their plan, when both runs recorded different selections), else `not_run`."""
    old, new = _report(old), _report(new)
    before = {r.id: r for r in old.records}
    after = {r.id: r for r in new.records}
    planned = new.planned()
    chose_otherwise = bool(old.selections() and new.selections() and old.selections() != new.selections())
    result = Diff()
    for key in sorted(set(before) | set(after)):
        o, n = before.get(key), after.get(key)
        if n is None:
            selected = key in planned if planned is not None else not chose_otherwise
            (result.not_run if selected else result.not_selected).append(o)
        elif n.status in FAILING:
            if o is not None and o.status in GOOD:
                result.new_failures.append((o, n))
            elif o is not None and o.status in FAILING:
                if o.signature != n.signature:
                    result.changed.append((o, n))
            else:
                result.new_scenarios_failing.append(n)
        elif n.status in GOOD and o is not None and o.status in FAILING:
            result.fixed.append((o, n))
    return result


def _some_ids(rows: list[Result], limit: int = 20) -> list[str]:
    return [f"  {r.id}" for r in rows[:limit]] + ([f"  ... {len(rows) - limit} more"] if len(rows) > limit else [])


def render_diff(d: Diff) -> list[str]:
    lines: list[str] = []
    if d.empty:
        lines.append("no changes: the same scenarios fail, with the same signatures")
    if d.not_run:
        lines.append(f"NOT RUN in the new report ({len(d.not_run)}): in the old run, selected by the new one, "
                     "but never recorded: the new run was cut short")
        lines += _some_ids(d.not_run)
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
    if d.not_selected:
        lines.append(f"not selected by the new run ({len(d.not_selected)}; the runs chose different cells):")
        lines += _some_ids(d.not_selected)
    return lines
