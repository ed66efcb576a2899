"""Installed library versions, and the capabilities that make a loading path applicable."""

from __future__ import annotations

import importlib
import platform
from functools import cache
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version


class BrokenInstall(Exception):
    """A package that is installed but fails on import: the environment is broken, not the library under test, and
    the cells that need it cannot run. Never a quiet "not applicable": a nightly whose transformers stopped importing
    would otherwise skip every transformers path and end green."""


def _version_of(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:  # not installed, or broken on import: import_error() tells which
        return None


@cache
def import_error(module: str) -> str | None:
    """Why `module` fails on import although it is installed ('ImportError: ...'); None when it imports, or when it
    is not installed at all (the import misses the module itself, not something it needs)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module.split(".")[0]:
            return None
        return f"{type(e).__name__}: {e}"
    except Exception as e:  # whatever a broken install raises
        first = (str(e).strip().splitlines() or [""])[0][:300]
        return f"{type(e).__name__}: {first}"
    return None


# The packages whose versions every result records (and so all a known-failures `when` can name).
RECORDED = ("python", "torch", "timm", "transformers")


@cache
def installed() -> dict[str, str | None]:
    """The versions every result records."""
    return {"python": platform.python_version(), **{package: _version_of(package) for package in RECORDED[1:]}}


def at_least(package: str, version: str) -> bool:
    """Whether `package` is installed at `version` or newer."""
    found = installed().get(package) or _version_of(package)
    return found is not None and Version(found) >= Version(version)


def missing(package: str, version: str, feature: str) -> str | None:
    """A not-applicable reason when `package` is older than `version` or not installed, else None; raises
    BrokenInstall when it is installed but fails on import."""
    found = installed().get(package) or _version_of(package)
    if found is None:
        if error := import_error(package):
            raise BrokenInstall(f"{package} is installed but cannot be imported ({feature} needs it): {error}")
        return f"{package} is not installed ({feature} needs {package}>={version})"
    if Version(found) < Version(version):
        return f"{feature} needs {package}>={version}; installed {package} {found}"
    if absent := absent_requirements(package):
        raise BrokenInstall(f"{package} {found} is installed without what it requires ({feature} needs it): "
                            f"{', '.join(absent)} not installed")
    return None


# Modules whose distribution is named otherwise (metadata.packages_distributions() would tell, in a tenth of a second).
DISTRIBUTIONS = {"open_clip": "open_clip_torch"}


@cache
def absent_requirements(module: str) -> list[str]:
    """The unconditional requirements that `module`'s installed distribution declares and that are not installed
    at all, as `pip check` reports them. transformers 5.25.0 requires kernels and, without it, raises on every
    `from_pretrained` (it kernelizes by default), so an environment missing it would otherwise read as a break of
    every transformers cell. Only absence counts: a declared version range that the environment misses is left to
    the library's own import-time checks, since bisect's `--no-deps` overlays of older releases run beside newer
    dependencies that work."""
    try:
        declared = metadata.requires(DISTRIBUTIONS.get(module, module)) or []
    except metadata.PackageNotFoundError:
        return []
    absent = []
    for line in declared:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's, or another platform's or Python's
        try:
            metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            absent.append(str(requirement))
    return absent
