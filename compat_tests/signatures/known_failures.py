"""The known-failures baseline: failures a run expects, so only new breaks make it red.

An entry matches scenarios by an fnmatch glob over their ids *and* the failure's signature; a failure
of a listed scenario with another signature is still new. Each entry says why, where it is tracked
upstream, and optionally until when it may stand: an expired entry no longer excuses anything and
fails the run, so the baseline cannot quietly outlive the bug.

    [[known]]
    id = "*-hf_auto-*"                 # or a list of globs
    signature = "kwarg-conflict"
    reason = "TimmWrapper passes num_classes itself and again from config.json model_args"
    upstream = "not yet filed"        # or a URL
    expires = 2026-06-30               # optional TOML date
    when = { transformers = ">=5" }    # optional: only under these releases (PEP 440 specifiers)
    xpass = false                      # optional: the ids describe where it can occur, not cells that fail
    workaround = "drop-num-classes-from-model-args"   # optional: see below; or "none: <why there is none>"
    message = "*reads: Attention.gate (*"  # optional: an fnmatch glob the failure's message must match too

`when` keeps an entry about one release line from excusing (or being "fixed" by) runs on another:
each cell is judged against the versions it recorded, so an old report is re-judged correctly too.
`xpass = false` is for a failure of a whole class of models (every model with non-persistent buffers, on
one path): it excuses matching failures, but a passing cell under its globs is just a pass, not "fixed".
Its expiry is then what makes the baseline be revisited.

A failure that stops a path at its first step hides everything behind it. `workaround` names the fix users
apply by hand (paths/support/workarounds.py): a cell failing with the entry's signature is run again with it
applied, and is xfailed only when the worked-around load passes; a second failure behind the known one makes
the cell failed under that second signature, unless an entry knows it too: then it is excused, and where that
entry names a workaround of its own the cell is run again with both, so two known failures in a row hide nothing
either. An entry whose failure has no such fix says why (`workaround = "none: ..."`).

`message` narrows an entry to one cause among failures that share a signature: the cross-version pickles of one
architecture can lack several attributes, each from its own release, and an entry for one must not excuse the
next.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from ..core.result import Result
from ..core.scenario import META_SUFFIX
from ..core.versions import RECORDED
from .catalog import needs_values

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; tomli is the same parser
    import tomli as tomllib

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "known_failures.toml"
_REQUIRED = ("id", "signature", "reason", "upstream")
_ALLOWED = (*_REQUIRED, "expires", "when", "xpass", "workaround", "message")
NO_WORKAROUND = "none:"


class KnownFailuresError(ValueError):
    """A known-failures file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class KnownFailure:
    ids: tuple[str, ...]  # fnmatch globs over scenario ids
    signature: str  # fnmatch glob over signature names (usually one exact name)
    reason: str
    upstream: str
    expires: date | None = None
    # package -> PEP 440 specifier set; the entry applies only where every installed version satisfies it.
    when: tuple[tuple[str, str], ...] = ()
    # False: a passing cell under the globs is not news (the entry names a class of models, not cells).
    xpass: bool = True
    # The fix users apply to get past the failure (a name in paths/support/workarounds.py), "none: <why>", or "".
    workaround: str = ""
    # An fnmatch glob over the failure's message ("": any message).
    message: str = ""

    @property
    def workaround_name(self) -> str | None:
        """The workaround to run the cell again with, if the entry names one."""
        return self.workaround if self.workaround and not self.workaround.startswith(NO_WORKAROUND) else None

    @property
    def id(self) -> str:
        return ", ".join(self.ids)

    def applies_to(self, versions: dict[str, str | None]) -> bool:
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        for package, spec in self.when:
            installed = versions.get(package)
            if not installed:
                return False
            try:
                # A local build (+cu130) or a dev release from git main still belongs to its line.
                if Version(installed.split("+")[0]) not in SpecifierSet(spec, prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return True

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today

    @cached_property
    def _ids_pattern(self) -> re.Pattern[str]:
        # One pattern for all the globs: asked for every cell that passes, against every entry.
        return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in self.ids) or "(?!)")

    def covers_id(self, scenario_id: str) -> bool:
        return self._ids_pattern.match(scenario_id) is not None

    def covers(self, scenario_id: str, signature: str, message: str = "") -> bool:
        return self.covers_id(scenario_id) and fnmatch.fnmatchcase(signature, self.signature) and (
            not self.message or fnmatch.fnmatchcase(message, self.message))

    def as_record(self) -> dict[str, Any]:
        """What a result stores about the entry that decided its status."""
        record = {"id": self.id, "signature": self.signature, "reason": self.reason, "upstream": self.upstream}
        if self.expires:
            record["expires"] = self.expires.isoformat()
        if self.when:
            record["when"] = dict(self.when)
        if self.workaround:
            record["workaround"] = self.workaround
        if self.message:
            record["message"] = self.message
        return record


@dataclass
class Baseline:
    entries: list[KnownFailure] = field(default_factory=list)
    source: str = ""
    today: date = field(default_factory=date.today)

    @property
    def active(self) -> list[KnownFailure]:
        return [e for e in self.entries if not e.expired(self.today)]

    @property
    def expired(self) -> list[KnownFailure]:
        return [e for e in self.entries if e.expired(self.today)]

    def expected(self, scenario_id: str, signature: str, versions: dict[str, str | None] | None = None,
                 message: str = "") -> KnownFailure | None:
        return next((e for e in self.active
                     if e.covers(scenario_id, signature, message) and e.applies_to(versions or {})), None)

    def listed(self, scenario_id: str, versions: dict[str, str | None] | None = None) -> KnownFailure | None:
        return next((e for e in self.active if e.covers_id(scenario_id) and e.applies_to(versions or {})), None)

    def apply(self, result: Result) -> Result:
        """Turn a recorded `failed` into `xfailed` and a `passed` into `xpassed` where an entry says so.

        Idempotent, and undoes a previous application first, so an old report can be re-judged against
        today's baseline.
        """
        if result.status in ("xfailed", "xpassed"):
            result.status = "failed" if result.status == "xfailed" else "passed"
            result.known = {}
        versions = result.versions
        if result.status == "failed" and (entry := self.expected(result.id, result.signature, versions,
                                                                 result.message)):
            result.status, result.known = "xfailed", entry.as_record()
        elif result.status == "failed" and (entry := self.listed(result.id, versions)):
            # Listed, but failing for another reason: a new failure, said so in the message.
            if "known failure is" not in result.message:
                result.message += f" (the known failure is {entry.signature}, not this)"
        elif result.status == "passed" and (entry := self.listed(result.id, versions)) and entry.xpass and not (
                result.id.endswith(META_SUFFIX) and needs_values(entry.signature)):
            # (a structural cell passing says nothing of a failure seen only in values)
            result.status, result.known = "xpassed", entry.as_record()
        return result


def _entry(raw: Any, where: str) -> KnownFailure:
    if not isinstance(raw, dict):
        raise KnownFailuresError(f"{where}: expected a [[known]] table")
    unknown = sorted(set(raw) - set(_ALLOWED))
    if unknown:
        raise KnownFailuresError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_ALLOWED)}")
    ids = raw.get("id")
    if isinstance(ids, list) and ids and all(isinstance(i, str) and i.strip() for i in ids):
        raw = {**raw, "id": ", ".join(ids)}
    else:
        ids = [ids]
    absent = [k for k in _REQUIRED if not isinstance(raw.get(k), str) or not raw[k].strip()]
    if absent:
        raise KnownFailuresError(f"{where}: needs non-empty string field(s) {', '.join(absent)} "
                                 "(id may be a list of globs; upstream may be 'not yet filed')")
    expires = raw.get("expires")
    if expires is not None and not isinstance(expires, date):
        raise KnownFailuresError(f"{where}: expires must be a TOML date like 2026-06-30, not {expires!r}")
    globs = tuple(i.strip() for i in ids)
    xpass = raw.get("xpass", True)
    if not isinstance(xpass, bool):
        raise KnownFailuresError(f"{where}: xpass must be true or false, not {xpass!r}")
    if not xpass and expires is None:
        raise KnownFailuresError(f"{where}: an entry with xpass = false needs an expires date: nothing else "
                                 "will say when it is fixed")
    workaround = raw.get("workaround", "")
    if not isinstance(workaround, str) or (workaround.startswith(NO_WORKAROUND)
                                           and not workaround[len(NO_WORKAROUND):].strip()):
        raise KnownFailuresError(f"{where}: workaround must name a workaround or say \"none: <why>\", "
                                 f"not {workaround!r}")
    message = raw.get("message", "")
    if not isinstance(message, str):
        raise KnownFailuresError(f"{where}: message must be an fnmatch glob string, not {message!r}")
    return KnownFailure(globs, raw["signature"], raw["reason"].strip(), raw["upstream"].strip(), expires,
                        _when(raw.get("when"), where), xpass, workaround.strip(), message)


def _when(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, str) for v in raw.values()):
        raise KnownFailuresError(f"{where}: when must be a table of package = \"specifier\", "
                                 f"e.g. when = {{ transformers = \">=5\" }}, not {raw!r}")
    for package, spec in raw.items():
        if package not in RECORDED:  # what every result records, so all a `when` can be judged by
            raise KnownFailuresError(f"{where}: when.{package}: results record only {', '.join(RECORDED)}")
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise KnownFailuresError(f"{where}: when.{package} = {spec!r} is not a version specifier "
                                     "like '>=5' or '>=1.0.31,<1.1'") from None
    return tuple(sorted(raw.items()))


def parse(text: str, source: str = "<string>", today: date | None = None) -> Baseline:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise KnownFailuresError(f"{source}: not valid TOML: {e}") from None
    extra = sorted(set(data) - {"known"})
    if extra:
        raise KnownFailuresError(f"{source}: unknown top-level key(s) {', '.join(extra)}; entries go in [[known]]")
    raw = data.get("known", [])
    if not isinstance(raw, list):
        raise KnownFailuresError(f"{source}: 'known' must be an array of tables ([[known]])")
    entries = [_entry(item, f"{source}: entry {i + 1}") for i, item in enumerate(raw)]
    return Baseline(entries, source, today or date.today())


def load(path: str | Path | None, today: date | None = None) -> Baseline:
    """The baseline in `path`; an empty one for None/''. A named file that does not exist is an error."""
    if not path:
        return Baseline(today=today or date.today())
    path = Path(path)
    if not path.is_file():
        raise KnownFailuresError(f"known-failures file {path} does not exist")
    return parse(path.read_text(encoding="utf-8"), str(path), today)
