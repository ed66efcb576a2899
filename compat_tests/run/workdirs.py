"""Where cells write their files: in RAM where the machine has it, in folders named after the process that owns
them, so that whoever outlives a killed process (the controller when xdist replaces a worker, or the next run
after the whole run was killed) removes what it left. A dead worker's RAM-backed folder otherwise holds that
memory until someone deletes it by hand."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RAM_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
PREFIX = "timm-compat-"


def workdir() -> tempfile.TemporaryDirectory:
    """A cell's own folder, removed when the cell ends (or by `sweep` when its process is killed)."""
    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-", dir=RAM_DIR)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


def sweep() -> list[Path]:
    """Remove the cell folders of processes that no longer exist; returns what was removed."""
    removed = []
    for base in {RAM_DIR or tempfile.gettempdir(), tempfile.gettempdir()}:
        for folder in Path(base).glob(f"{PREFIX}*"):
            pid = folder.name[len(PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed
