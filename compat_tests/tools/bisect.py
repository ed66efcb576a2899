"""Find the first release of a package at which one scenario's outcome changed.

Each probed release is installed with `pip install --no-deps --target` into a throwaway folder that is
put first on PYTHONPATH for a subprocess running just that scenario, so every other package (torch,
the other library) stays as installed and only the bisected package varies.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..core import result as results
from ..core.scenario import parse_id

REPO = Path(__file__).resolve().parents[2]
MATRIX_TEST = str(REPO / "compat_tests" / "test_matrix.py") + "::test_scenario"
Outcome = tuple[str, str]  # (status, signature)
# Bisect compares what the library did, not what the known-failures baseline thinks of it.
_RAW_STATUS = {"xfailed": "failed", "xpassed": "passed"}


class BisectError(RuntimeError):
    pass


def available_versions(package: str) -> list[Version]:
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package],
                          capture_output=True, text=True, timeout=300)
    m = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode or not m:
        raise BisectError(f"cannot list releases of {package}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    found = []
    for text in m.group(1).split(","):
        try:
            found.append(Version(text.strip()))
        except InvalidVersion:
            continue
    return sorted(v for v in found if not v.is_prerelease)


def between(versions: list[Version], good: Version, bad: Version) -> list[Version]:
    """Releases from good to bad inclusive, in order; both ends must be published releases."""
    for end in (good, bad):
        if end not in versions:
            raise BisectError(f"{end} is not a published release")
    low, high = sorted((good, bad))
    return [v for v in versions if low <= v <= high]


def probe(scenario_id: str, package: str, version: Version, workdir: Path) -> Outcome:
    """Run one scenario with `package==version` overlaid on the current environment."""
    target = workdir / f"{package}-{version}"
    if not target.exists():
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              f"{package}=={version}"], capture_output=True, text=True, timeout=600)
        if pip.returncode:
            raise BisectError(f"pip could not install {package}=={version}: {pip.stderr.strip()[-300:]}")
    reports = workdir / f"report-{package}-{version}"
    parsed = parse_id(scenario_id)
    model, path = (parsed.model, parsed.path) if parsed else (scenario_id.split("-")[0], "create_model")
    tier = ["--tier", "structural"] if parsed and parsed.meta else []
    # The overlay is the point: a tox env's promise of its own releases (TIMM_COMPAT_EXPECT) does not hold here.
    inherited = {k: v for k, v in os.environ.items() if k != "TIMM_COMPAT_EXPECT"}
    env = {**inherited, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    # The cell by its node id: `-k` refuses a structural id's "@".
    subprocess.run([sys.executable, "-m", "pytest", f"{MATRIX_TEST}[{scenario_id}]", "-q", "-p", "no:cacheprovider",
                    "--models", model, "--paths", path, *tier, "--report-dir", str(reports)],
                   cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    for record in results.read(reports / results.REPORT_NAME):
        if record.id == scenario_id:
            status = _RAW_STATUS.get(record.status, record.status)
            return status, record.signature if status != "passed" else ""
    return "error", "no-record"


def first_change(releases: list[Version], outcome: Callable[[Version], Outcome]) -> tuple[Version, Outcome] | None:
    """Binary search for the first release whose outcome differs from the first one's (None if the last
    one's does not): assumes the outcome changes once between the ends, as a regression does."""
    base = outcome(releases[0])
    if outcome(releases[-1]) == base:
        return None
    low, high = 0, len(releases) - 1  # outcome(low) == base, outcome(high) != base
    while high - low > 1:
        mid = (low + high) // 2
        if outcome(releases[mid]) == base:
            low = mid
        else:
            high = mid
    return releases[high], outcome(releases[high])


def bisect(scenario_id: str, package: str, good: str, bad: str, log=print) -> tuple[Version, Outcome] | None:
    """The first release after `good` whose outcome differs from good's, or None if bad's equals good's."""
    releases = between(available_versions(package), Version(good), Version(bad))
    with tempfile.TemporaryDirectory(prefix="timm-compat-bisect-") as tmp:
        cache: dict[Version, Outcome] = {}

        def outcome(v: Version) -> Outcome:
            if v not in cache:
                cache[v] = probe(scenario_id, package, v, Path(tmp))
                log(f"  {package} {v}: {cache[v][0]} {cache[v][1]}".rstrip())
            return cache[v]

        return first_change(releases, outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="timm-compat bisect", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", help="a scenario id, e.g. resnet18-hf_auto-base")
    parser.add_argument("--package", default="timm", choices=("timm", "transformers"))
    parser.add_argument("--good", required=True, help="a release with the old outcome")
    parser.add_argument("--bad", required=True, help="a release with the new outcome")
    args = parser.parse_args(argv)
    if args.scenario.count("-") != 2:
        print(f"bisect: {args.scenario!r} is not a scenario id (model-path-override)", file=sys.stderr)
        return 2
    print(f"bisecting {args.scenario} over {args.package} {args.good}..{args.bad}")
    try:
        found = bisect(args.scenario, args.package, args.good, args.bad)
    except BisectError as e:
        print(f"bisect: {e}", file=sys.stderr)
        return 2
    if found is None:
        print(f"no change: {args.package} {args.good} and {args.bad} give the same outcome")
        return 0
    version, (status, signature) = found
    print(f"first changed release: {args.package} {version} -> {status} {signature}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
