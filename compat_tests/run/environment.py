"""The releases a tox env promises, checked against what is installed before the matrix starts.

Each compat env pins its releases in `constraints/<env>.txt` and states them in `TIMM_COMPAT_EXPECT`
(`timm==0.9.16,transformers==4.47.1`, or `timm==git-main` for a branch head installed from git). A pin can
still be defeated (an env built before the pins, a hand `pip install` inside it), and the run would then test
other releases than its name says while ending green, so the plugin refuses to start on drift. Reads only
`importlib.metadata`: nothing is imported, so the check costs milliseconds and cannot be broken by the
libraries it checks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from importlib import metadata

from packaging.version import InvalidVersion, Version

EXPECT_VAR = "TIMM_COMPAT_EXPECT"
# The promise "installed from the git main branch", in place of a release.
GIT_MAIN = "git-main"

_ITEM = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)\s*$")


class ExpectationError(ValueError):
    """A `TIMM_COMPAT_EXPECT` that does not parse."""


def parse(text: str) -> dict[str, str]:
    """`timm==0.9.16,transformers==git-main` -> {"timm": "0.9.16", "transformers": "git-main"}.

    Names are normalised as distributions are (`open_clip_torch` == `open-clip-torch`); a value is a release
    version or `git-main`.
    """
    expected: dict[str, str] = {}
    for item in filter(str.strip, text.split(",")):
        match = _ITEM.match(item)
        if not match:
            raise ExpectationError(f"{EXPECT_VAR} item {item.strip()!r} is not NAME==VERSION or NAME=={GIT_MAIN}")
        name, value = _normalise(match.group(1)), match.group(2)
        if value != GIT_MAIN:
            try:
                Version(value)
            except InvalidVersion:
                raise ExpectationError(f"{EXPECT_VAR} item {item.strip()!r}: {value!r} is neither a version "
                                       f"nor {GIT_MAIN}") from None
        expected[name] = value
    if not expected:
        raise ExpectationError(f"{EXPECT_VAR} is set but names no package")
    return expected


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(name: str, path: list[str] | None) -> metadata.Distribution | None:
    where = {} if path is None else {"path": path}
    return next(iter(metadata.distributions(name=name, **where)), None)


def _vcs_revision(dist: metadata.Distribution) -> tuple[bool, str | None]:
    """(installed from a VCS, the revision asked for or None for the default branch), from PEP 610's file."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False, None
    try:
        info = json.loads(text).get("vcs_info")
    except (ValueError, AttributeError):
        return False, None
    if not isinstance(info, dict):
        return False, None
    return True, info.get("requested_revision")


def installed(name: str, path: Iterable[str] | None = None) -> str | None:
    """How `name` is installed, in the promise's terms: its version, `git-main` for a head of a git
    branch installed without a revision or at `main`, `VERSION from git REV` for any other revision, or None
    when it is not installed. `path` searches those folders instead of sys.path."""
    dist = _distribution(name, None if path is None else list(path))
    if dist is None:
        return None
    from_vcs, revision = _vcs_revision(dist)
    if not from_vcs:
        return dist.version
    if revision in (None, "main"):
        return GIT_MAIN
    return f"{dist.version} from git {revision}"


def _keeps(promise: str, found: str | None) -> bool:
    if found is None or promise == GIT_MAIN or found == GIT_MAIN:
        return promise == found
    try:
        return Version(found) == Version(promise)
    except InvalidVersion:  # "1.0 from git v1.0": installed from a revision, not the release
        return False


def _shown(found: dict[str, str | None]) -> str:
    """{"timm": "1.0.31", "transformers": None} -> "timm 1.0.31 is installed and transformers is not installed"."""
    def listed(items: list[str], what: str) -> str:
        return f"{' and '.join(items)} {'is' if len(items) == 1 else 'are'} {what}"

    present = [f"{name} from git main" if version == GIT_MAIN else f"{name} {version}"
               for name, version in found.items() if version is not None]
    absent = [name for name, version in found.items() if version is None]
    parts = [listed(present, "installed")] if present else []
    if absent:
        parts.append(listed(absent, "not installed"))
    return " and ".join(parts)


def drift(environ: Mapping[str, str] | None = None, path: Iterable[str] | None = None) -> str | None:
    """One line saying how the installed releases differ from the env's `TIMM_COMPAT_EXPECT`, else None.

    None as well when the variable is unset or empty (a plain `pytest compat_tests` outside tox promises
    nothing). `environ` defaults to os.environ; `path` searches those folders instead of sys.path.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(EXPECT_VAR, "").strip()
    if not text:
        return None
    env = environ.get("TOX_ENV_NAME")
    who = f"tox env {env}" if env else EXPECT_VAR
    try:
        expected = parse(text)
    except ExpectationError as e:
        return f"{who}: {e}"
    path = list(path) if path is not None else None
    wrong = {name: installed(name, path) for name in expected}
    wrong = {name: found for name, found in wrong.items() if not _keeps(expected[name], found)}
    if not wrong:
        return None
    promised = ", ".join(f"{name}=={expected[name]}" for name in wrong)
    rebuild = f"rebuild it with `tox -r -e {env}` (pins: constraints/{env}.txt)" if env else \
        "install the promised releases or unset it"
    return f"{who} promises {promised} but {_shown(wrong)}: the run would not test what it says; {rebuild}"
