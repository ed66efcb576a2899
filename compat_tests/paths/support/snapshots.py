"""The cross-version snapshots (fixtures/cross_version/): what every older release writes, for every architecture.

Written by fixtures/cross_version/generate.py, one lzma-compressed JSON file per producer (a pinned timm
release, or a transformers release with a timm of its time) and manifest.json. A timm producer recorded, for
each architecture of its registry, the state_dict schema ({key: [shape, dtype]}) of the default and of the
headless (num_classes=0) model, the config.json its save_for_hf writes and the sha256 of its whole-object
pickle (the pickle itself lives in a cache: `CACHE/<producer>/<arch>.pt`); a transformers producer, for a
sample of small architectures, TimmWrapper's save_pretrained config.json and weights schema.

`snapshots_for(arch)` returns each DISTINCT snapshot of an architecture: producers that wrote byte-identical
content (the same canonical JSON, or the same pickle bytes) share one, so the cost of checking them grows
with what changed between releases, not with their number. No torch here: importing this is cheap, and each
producer file is decompressed and parsed at most once per process, when first needed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .manifest import sha256_file

# compat_tests is installed editable, so the fixtures sit beside the package in the repository.
SNAPSHOTS = Path(__file__).resolve().parents[3] / "fixtures" / "cross_version"
MANIFEST = SNAPSHOTS / "manifest.json"
GENERATOR = SNAPSHOTS / "generate.py"
# Read at call time by pickle_path/verify_pickle/ensure_pickles, so a test may point it elsewhere.
CACHE = Path(os.environ.get("TIMM_COMPAT_CACHE") or Path.home() / ".cache" / "timm-compat") / "cross_version"
KINDS = ("state_dict", "headless", "hub", "pickle", "hf_config")
TIMM_KINDS = ("state_dict", "headless", "hub", "pickle")
_FAMILIES = ("timm", "transformers")


@dataclass(frozen=True)
class Snapshot:
    """One distinct thing older releases wrote for `arch`.

    `producers`: every producer that wrote byte-identical content, in release order (the first names the
    cell). `content`: the schema ({key: [shape, dtype]}) for "state_dict"/"headless"; {"config", "schema"}
    for "hub" (save_for_hf's config.json, the default schema) and "hf_config" (save_pretrained's config.json,
    its weights' schema); the pickle's sha256 for "pickle". `digest`: sha256 of the canonical JSON of
    `content` (for "pickle", the pickle's own sha256). `skipped`: producer -> why it has no snapshot of this
    kind (not in its registry, could not be built, pickled, ...), for the producers of the kind's family."""

    arch: str
    kind: str
    producers: tuple[str, ...]
    digest: str
    content: Any
    skipped: dict[str, str]


def canonical(obj: Any) -> bytes:
    """The bytes a digest is taken of: the generator's own encoding (sorted keys, compact, ASCII)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _release(producer: str) -> tuple[int, tuple[int, ...]]:
    family = next((i for i, f in enumerate(_FAMILIES) if producer.startswith(f)), len(_FAMILIES))
    return family, tuple(int(n) for n in re.findall(r"\d+", producer))


@cache
def _manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())["producers"] if MANIFEST.exists() else {}


def producers() -> list[str]:
    """Every producer in the manifest: timm releases oldest first, then transformers releases; empty when
    the snapshots are absent."""
    return sorted(_manifest(), key=_release)


def _entry(producer: str) -> dict[str, Any]:
    try:
        return _manifest()[producer]
    except KeyError:
        raise KeyError(f"no producer {producer!r} in {MANIFEST} (have: {', '.join(producers())})") from None


def producer_versions(producer: str) -> dict[str, str | None]:
    """{"timm", "transformers", "torch", "python", "huggingface_hub"} of the producer (None: not installed)."""
    return dict(_entry(producer)["versions"])


def producer_packages(producer: str) -> list[str]:
    """The pip requirements its generator installed (`pip install --no-deps --target`)."""
    return list(_entry(producer)["packages"])


# One str object per distinct item text across producers: most releases wrote the same schema.
_TEXTS: dict[str, str] = {}


@cache
def _records(producer: str) -> dict[str, dict[str, str]]:
    """arch -> item -> the item's canonical JSON text, read once per process after the file's sha256 matched
    the manifest. The generator writes each item on its own line (`encode_lines`), so this splits lines
    instead of parsing: what is hashed is the bytes the release's content encodes to, and only what a
    snapshot hands out is ever parsed."""
    entry = _entry(producer)
    data = (SNAPSHOTS / entry["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{SNAPSHOTS / entry['file']}: sha256 differs from {MANIFEST}; regenerate it with "
                         f"{entry['command']}")
    lines = lzma.decompress(data).decode("ascii").split("\n")
    if lines[0] != '{"architectures":{':
        raise ValueError(f"{SNAPSHOTS / entry['file']}: not one item per line; regenerate it with {entry['command']}")
    records: dict[str, dict[str, str]] = {}
    items: dict[str, str] = {}
    for line in lines[1:-1]:
        if line.endswith(":{"):  # '"<arch>":{' opens an architecture
            items = records.setdefault(line[1:-3], {})
        elif line[0] == '"':  # '"<item>":<canonical JSON>' with a separating comma unless last
            name, _, value = line.partition('":')
            value = value[:-1] if value.endswith(",") else value  # no canonical JSON value ends with ","
            items[name[1:]] = _TEXTS.setdefault(value, value)
    return records


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _why(items: dict[str, str] | None, *names: str) -> str:
    skipped = json.loads(items.get("skipped", "{}")) if items else {}
    return next((skipped[n] for n in names if n in skipped), "not recorded")


class _Groups:
    """Producers grouped by the canonical text of what they wrote, in release order: equal text is exactly
    byte-identical content. `skipped`: producer -> why it wrote nothing of this kind."""

    def __init__(self) -> None:
        self.members: dict[Any, list[str]] = {}
        self.skipped: dict[str, str] = {}

    def add(self, producer: str, key: Any) -> None:
        self.members.setdefault(key, []).append(producer)


def _pair(config: str, schema: str) -> str:
    """canonical({"config": ..., "schema": ...}) from the canonical texts of its two parts."""
    return f'{{"config":{config},"schema":{schema}}}'


@cache
def _snapshots(arch: str) -> tuple[Snapshot, ...]:
    import gc

    # Parsing builds many small lists that the cyclic collector would walk again and again, for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _distinct(arch)
    finally:
        if enabled:
            gc.enable()


def _distinct(arch: str) -> tuple[Snapshot, ...]:
    groups = {kind: _Groups() for kind in KINDS}
    parsed: dict[str, Any] = {}  # one object per text: a schema shared by state_dict, headless and hub
    headless: dict[tuple[str, str], str] = {}  # (default, delta) texts -> the headless schema's text

    def load(text: str) -> Any:
        if text not in parsed:
            parsed[text] = json.loads(text)
        return parsed[text]

    def headless_text(default: str, delta: str) -> str:
        """The headless schema is stored as what differs from the default one (the generator's headless_delta):
        rebuilt and encoded once per distinct pair, the rebuilt dict kept as its content."""
        if (default, delta) not in headless:
            schema = dict(load(default))
            change = json.loads(delta)
            for key in change["removed"]:
                del schema[key]
            schema.update(change["set"])
            text = canonical(schema).decode()
            parsed.setdefault(text, schema)
            headless[(default, delta)] = text
        return headless[(default, delta)]

    for producer in producers():
        items = _records(producer).get(arch)
        if producer.startswith("transformers"):
            if items is None:
                groups["hf_config"].skipped[producer] = "not in its sample of architectures"
            elif "hf_config" in items:
                groups["hf_config"].add(producer, (items["hf_config"], items["hf_schema"]))
            else:
                groups["hf_config"].skipped[producer] = _why(items, "hf_config")
            continue
        if items is None:
            for kind in TIMM_KINDS:
                groups[kind].skipped[producer] = f"not in {producer}'s registry"
            continue
        default = items.get("default")
        keys = {
            "state_dict": default,
            "headless": items.get("headless") or (
                headless_text(default, items["headless_delta"]) if default and "headless_delta" in items else None),
            "hub": (items["config"], default) if default and "config" in items else None,
            "pickle": _load(items.get("pickle")),
        }
        why = {"state_dict": ("default",), "headless": ("headless",), "hub": ("config", "default"),
               "pickle": ("pickle",)}
        for kind, key in keys.items():
            if key is None:
                groups[kind].skipped[producer] = _why(items, *why[kind])
            else:
                groups[kind].add(producer, key)
    found: list[Snapshot] = []
    for kind in KINDS:
        for key, members in groups[kind].members.items():
            if kind == "pickle":
                digest, content = key, key
            elif kind in ("hub", "hf_config"):
                digest = hashlib.sha256(_pair(*key).encode()).hexdigest()
                content = {"config": load(key[0]), "schema": load(key[1])}
            else:
                digest, content = hashlib.sha256(key.encode()).hexdigest(), load(key)
            found.append(Snapshot(arch, kind, tuple(members), digest, content, dict(groups[kind].skipped)))
    return tuple(found)


def snapshots_for(arch: str) -> list[Snapshot]:
    """Every distinct snapshot of `arch` across producers, by kind (KINDS order), then by the release that
    first wrote it; empty for an architecture no producer has. Cached per process."""
    return list(_snapshots(arch))


def skips(arch: str) -> dict[str, dict[str, str]]:
    """kind -> producer -> why it wrote no such snapshot of `arch`, including kinds no producer could write
    (which `snapshots_for` cannot show)."""
    by_kind: dict[str, dict[str, str]] = {}
    for snap in _snapshots(arch):
        by_kind.setdefault(snap.kind, snap.skipped)
    for producer in producers():
        items = _records(producer).get(arch)
        kinds = ("hf_config",) if producer.startswith("transformers") else TIMM_KINDS
        for kind in kinds:
            if kind not in by_kind and items is not None:
                name = {"state_dict": "default", "hub": "config"}.get(kind, kind)
                by_kind.setdefault(kind, {})[producer] = _why(items, name, "default")
    return {kind: reasons for kind, reasons in by_kind.items() if reasons}


def architectures(producer: str) -> list[str]:
    """The architectures the producer recorded (a timm producer: its whole registry)."""
    return sorted(_records(producer))


# ---------------------------------------------------------------------------------------------------
# The pickle cache: generated on demand, never committed, unpickled only after its sha256 matched.


def pickle_path(producer: str, arch: str) -> Path:
    return CACHE / producer / f"{arch}.pt"


def _refill_command(producer: str) -> str:
    return f"python fixtures/cross_version/generate.py --pickles-only --producer {producer}"


def verify_pickle(producer: str, arch: str) -> str | None:
    """None when the cached pickle exists and its sha256 is the committed one; else why it must not be loaded."""
    items = _records(producer).get(arch)
    want = _load(items.get("pickle")) if items else None
    if not want:
        why = _why(items, "pickle") if items else f"not in {producer}'s registry"
        return f"{producer} wrote no pickle of {arch}: {why}"
    path = pickle_path(producer, arch)
    if not path.exists():
        return f"absent: {path} (generate it: {_refill_command(producer)})"
    got = sha256_file(path)
    if got != want:
        return f"sha256 mismatch: {path} is {got}, the committed snapshot says {want}: refusing to load"
    return None


def _names_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def missing_pickles(producer: str, models: list[str] | None = None) -> int:
    """How many of the producer's committed pickles the cache lacks (absent files; a present file with the wrong
    sha256 is refused by `verify_pickle` when used), among the architectures the `models` globs match (None:
    all). A directory listing when the cache is complete: the manifest holds the digest of the names it must
    contain."""
    expected = _entry(producer).get("pickles")
    if not expected:
        return 0
    folder = CACHE / producer
    present = [p.stem for p in folder.glob("*.pt")] if folder.is_dir() else []
    if len(present) == expected["count"] and _names_digest(present) == expected["names_sha256"]:
        return 0
    have = set(present)
    return sum(1 for arch, items in _records(producer).items() if _load(items.get("pickle")) and arch not in have
               and (models is None or any(fnmatch.fnmatchcase(arch, g) for g in models)))


def ensure_pickles(producers: list[str], log: Callable[[str], None],
                   models: list[str] | None = None) -> dict[str, str]:
    """Generate the pickles the cache lacks for these producers (`generate.py --pickles-only`, which checks every
    one against the committed sha256), saying what it does and how long it took. `models` (fnmatch globs; None:
    the whole registry) limits it to what a run will read: a one-model run on a cold cache costs seconds per
    release, not minutes. Returns {producer: why} for those that are still incomplete (no package registry, a
    pickle that came out different): never silent."""
    problems = {}
    only = ["--models", ",".join(models)] if models is not None else []
    for producer in producers:
        missing = missing_pickles(producer, models)
        if not missing:
            continue
        entry = _entry(producer)
        estimate = 15 + entry["seconds"] * missing / max(entry["pickles"]["count"], 1)  # plus starting up
        log(f"{producer}: {missing} pickles absent from {CACHE / producer}; generating them "
            f"({_refill_command(producer)}; a full generation of this release took {entry['seconds']:.0f}s, "
            f"expect up to ~{estimate:.0f}s)")
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(GENERATOR), "--pickles-only", "--producer", producer,
                               "--cache", str(CACHE), *only], capture_output=True, text=True)
        took = time.monotonic() - started
        left = missing_pickles(producer, models)
        if proc.returncode == 0 and not left:
            log(f"{producer}: generated {missing} pickles in {took:.0f}s")
            continue
        tail = " | ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-4:])
        problems[producer] = (f"{left} of {missing} pickles still absent after {took:.0f}s (generator exit "
                              f"{proc.returncode}): {tail}")
        log(f"{producer}: {problems[producer]}")
    return problems
