"""Installed library versions, and the capabilities that make a loading path applicable."""

from __future__ import annotations

import importlib
import platform
from functools import cache

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
    return None
