"""Installed library versions, and the capabilities that make a loading path applicable."""

from __future__ import annotations

import importlib
import platform
from functools import cache

from packaging.version import Version


def _version_of(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except Exception:  # not installed, or broken on import: both mean "not available"
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
    """A not-applicable reason when `package` is older than `version`, else None."""
    found = installed().get(package) or _version_of(package)
    if found is None:
        return f"{package} is not installed ({feature} needs {package}>={version})"
    if Version(found) < Version(version):
        return f"{feature} needs {package}>={version}; installed {package} {found}"
    return None
