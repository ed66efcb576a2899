"""`timm-compat`: report, merge, diff and repro over JSONL reports (local runs or CI artifacts).

Bad input (a missing file, a corrupt line, an unknown id) is one clear line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.result import REPORT_NAME, Result
from ..core.scenario import parse_id
from ..report import markdown as report_markdown
from ..report import store as report_io
from ..report.reclassify import reclassify
from ..report.store import ReportError
from ..signatures import known_failures

BAD_INPUT = 2


class CliError(Exception):
    """A message for the user; the command exits with BAD_INPUT."""


def _load(targets: Sequence[str], rederive: bool) -> report_io.Report:
    """The reports, with the names the live run gave; re-derived from the evidence with today's catalog only on
    request, saying where the two differ."""
    report = report_io.load(targets)
    if rederive and (changed := reclassify(report.records)):
        shown = "; ".join(f"{i}: {old or '-'} -> {new}" for i, old, new in changed[:5])
        print(f"timm-compat: today's catalog names {len(changed)} recorded failure(s) differently: {shown}"
              + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""), file=sys.stderr)
    return report


def _incomplete(command: str, report: report_io.Report, since: report_io.Diff | None, against: object) -> bool:
    """Say on stderr why a report is not the whole of its runs; True when it is not."""
    lines = report.problems()
    if since is not None and since.not_run:
        lines.append(f"{len(since.not_run)} scenario(s) of {against} were selected again but never recorded, "
                     f"e.g. {', '.join(r.id for r in since.not_run[:3])}")
    for line in lines:
        print(f"timm-compat {command}: INCOMPLETE: {line}", file=sys.stderr)
    return bool(lines)


def cmd_report(args: argparse.Namespace) -> int:
    report = _load(args.reports, args.reclassify)
    records = report.records
    baseline = known_failures.load(args.known_failures) if args.known_failures else None
    if baseline is not None:
        records = [baseline.apply(r) for r in records]
    against = Path(args.against) if args.against else report_io.previous(args.reports[0], report)
    since = None
    if against is not None:
        old = _load([str(against)], args.reclassify)
        if baseline is not None:
            old.records = [baseline.apply(r) for r in old.records]
        since = report_io.diff(old, report)
    first = Path(args.reports[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    markdown = report_markdown.render(records, since, baseline.expired if baseline else (), args.title,
                                      report.problems())
    from ..report import html as report_html

    md_file = out / "summary.md"
    out.mkdir(parents=True, exist_ok=True)
    md_file.write_text(markdown, encoding="utf-8")
    # A report read from several places is best reproduced from its merge; one file or folder names itself.
    html_file = report_html.write(out / "report.html", records, args.title,
                                  report=args.reports[0] if len(args.reports) == 1 else None)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(markdown)
    sys.stdout.write(markdown)
    print(f"timm-compat: wrote {md_file} and {html_file} ({len(records)} scenarios)", file=sys.stderr)
    incomplete = _incomplete("report", report, since, against)
    new = sum(r.status in ("failed", "error") for r in records)
    return 1 if incomplete or (args.fail_on_new and (new or (baseline and baseline.expired))) else 0


def cmd_merge(args: argparse.Namespace) -> int:
    report = report_io.load(args.reports)
    if args.output:
        report_io.write(Path(args.output), report.records, report.runs.values())
        print(f"timm-compat: merged {len(report.records)} scenarios of {len(report.runs) or 'unrecorded'} run(s) "
              f"into {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(report_io.dumps(report.records, report.runs.values()))
    _incomplete("merge", report, None, None)  # said, not fatal: a nightly merges what its shards left
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    old = _load([args.old], args.reclassify)
    new = _load([args.new], args.reclassify)
    d = report_io.diff(old, new)
    if args.json:
        print(json.dumps({**d.ids(), "incomplete": new.problems()}, indent=1))
    else:
        print("\n".join(report_io.render_diff(d)))
    incomplete = _incomplete("diff", new, d, args.old)
    return 1 if incomplete or (args.exit_code and (d.new_failures or d.new_scenarios_failing)) else 0


def _generate_repro(scenario_id: str, override_kwargs: dict | None) -> str:
    """A repro for a scenario the report holds none for (it passed, or there is no report)."""
    from ..paths import all_paths

    parsed = parse_id(scenario_id)
    if parsed is None:
        raise CliError(f"{scenario_id!r} is not a scenario id (model-path-override, e.g. resnet18-state_dict-base, "
                       "with '@meta' for a structural cell)")
    model, path_name, override = parsed.model, parsed.path, parsed.override
    paths = all_paths()
    if path_name not in paths:
        raise CliError(f"unknown loading path {path_name!r} in {scenario_id!r}; known: {', '.join(paths)}")
    import timm

    from ..core.scenario import Override
    from ..core.versions import installed
    from ..repro.script import script
    from ..source.meta import MetaShapes, build_anywhere
    from ..source.models import DEFAULT_SEED, _input_candidates

    if not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=3)
        raise CliError(f"unknown model {model!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    path = paths[path_name]
    if override_kwargs is None:
        chosen = [o for o in path.overrides(model) if o.name == override]
        if not chosen:
            raise CliError(f"path {path_name} has no override {override!r} for {model}")
        override_kwargs = chosen[0].as_dict()
    kwargs = path.source_kwargs(Override.of(override, **override_kwargs))
    built, context, _ = build_anywhere(model, **kwargs)  # the input size comes from the model's config
    spec = {"name": model, "kwargs": dict(override_kwargs), "seed": DEFAULT_SEED, "source_kwargs": kwargs}
    # A structural repro builds on the CPU where plain meta cannot build this release's model (as its cell records).
    return script(scenario_id, path, spec, _input_candidates(built, kwargs)[0], installed(), meta=parsed.meta,
                  meta_device="meta" if context is MetaShapes else "cpu")


def cmd_repro(args: argparse.Namespace) -> int:
    target = Path(args.report)
    records: list[Result] = []
    if target.exists():
        records = report_io.load([str(target)]).records
    elif args.report_given:
        raise ReportError(f"{target}: no such file or directory")
    found = next((r for r in records if r.id == args.id), None)
    if found is not None and found.repro:
        sys.stdout.write(found.repro if found.repro.endswith("\n") else found.repro + "\n")
        return 0
    if found is None and records:
        close = difflib.get_close_matches(args.id, [r.id for r in records], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if not args.generate:
            raise CliError(f"no scenario {args.id!r} in {target}{hint} (use --generate to build a repro anyway)")
    if found is not None and found.status in ("error", "skipped"):
        raise CliError(f"{args.id} was {found.status} ({found.message[:200]}): there is no load to reproduce")
    sys.stdout.write(_generate_repro(args.id, found.override_kwargs if found else None))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="timm-compat", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("report", help="Markdown summary (stdout, summary.md, $GITHUB_STEP_SUMMARY) and report.html")
    r.add_argument("reports", nargs="+", help="report files or directories (shards are merged)")
    r.add_argument("--out", help="where summary.md and report.html go (default: beside the first report)")
    r.add_argument("--known-failures", help="re-judge the records against this baseline (xfailed/xpassed)")
    r.add_argument("--against", help="an older report to list changes against (default: the run before, of the same "
                                     "selection, kept in runs/)")
    r.add_argument("--title", default="timm-compat report")
    r.add_argument("--reclassify", action="store_true",
                   help="re-derive each failure's signature from its evidence with today's catalog (says what changed)")
    r.add_argument("--fail-on-new", action="store_true", help="exit 1 when there are new failures or expired entries")
    r.set_defaults(func=cmd_report)

    m = sub.add_parser("merge", help="combine the JSONL of several shards or workers into one report")
    m.add_argument("reports", nargs="+")
    m.add_argument("-o", "--output", help="output file (default: stdout)")
    m.set_defaults(func=cmd_merge)

    d = sub.add_parser("diff", help="new failures, fixed scenarios and changed signatures from OLD to NEW")
    d.add_argument("old")
    d.add_argument("new")
    d.add_argument("--json", action="store_true")
    d.add_argument("--reclassify", action="store_true", help="as for report")
    d.add_argument("--exit-code", action="store_true", help="exit 1 when NEW has new failures")
    d.set_defaults(func=cmd_diff)

    x = sub.add_parser("repro", help="print a standalone script reproducing one scenario")
    x.add_argument("id", help="scenario id, e.g. resnet18-hf_auto-base")
    x.add_argument("--report", default=None, help=f"report file or directory (default: reports/{REPORT_NAME})")
    x.add_argument("--generate", action="store_true", help="build a repro even if the report lacks the id")
    x.set_defaults(func=cmd_repro)

    # Listed for --help; main() hands its arguments to bisect's own parser, which drives pip and pytest.
    sub.add_parser("bisect", add_help=False,
                   help="the first timm/transformers release at which one scenario's outcome changed")
    sub.add_parser("bench", add_help=False,
                   help="speed and memory against the goals (as tox -e bench; --full adds the full tier)")
    return p


def _bisect(argv: list[str]) -> int:
    from . import bisect

    return bisect.main(argv)


def _bench(argv: list[str]) -> int:
    from . import bench

    return bench.main(argv)


# Commands with their own argument parsers: main() hands them everything after their name.
_DELEGATED = {"bisect": _bisect, "bench": _bench}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in _DELEGATED:
        return _DELEGATED[argv[0]](argv[1:])
    args = parser().parse_args(argv)
    if args.command == "repro":
        args.report_given = args.report is not None
        args.report = args.report or str(Path("reports") / REPORT_NAME)
    try:
        return args.func(args)
    except (CliError, ReportError, known_failures.KnownFailuresError) as e:
        print(f"timm-compat {args.command}: error: {e}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:  # `timm-compat ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
