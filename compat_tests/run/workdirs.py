"""Where cells write their files: in RAM (tmpfs, /dev/shm) for models small beside the memory the machine has free,
on disk for the others, in folders named after the process that owns them, so that whoever outlives a killed
process (the controller when xdist replaces a worker, or the next run after the whole run was killed) removes
what it left. A dead worker's RAM-backed folder otherwise holds that memory until someone deletes it by hand.

A file in tmpfs is one more copy of the model that nothing can reclaim while the cell runs, whereas a file on disk
sits in the page cache, which the kernel drops under pressure; written and read back at once, it is not slower
(measured: a 330 MB ViT-B timm_hub cell took the same 2.5 s either way). So only files small beside free memory
go to RAM: a model whose float32 state is at most `RAM_SHARE` (1/16) of the memory available when its cell
starts. With two workers, each writing at most two such files per cell, tmpfs then holds at most a quarter of
what was free.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RAM_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
PREFIX = "timm-compat-"
RAM_SHARE = 1 / 16


def available_bytes() -> int:
    """Memory the kernel can give without swapping (`MemAvailable` in /proc/meminfo: free memory plus the page
    cache it can drop); where that file is missing, the free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def in_ram(model_bytes: int | None, available: int | None = None) -> bool:
    """Whether a cell of a model whose float32 state is `model_bytes` writes its files in RAM; unknown sizes
    (structural cells, whose files hold no values) do."""
    if RAM_DIR is None:
        return False
    if not model_bytes:
        return True
    return model_bytes <= RAM_SHARE * (available_bytes() if available is None else available)


def workdir(model_bytes: int | None = None) -> tempfile.TemporaryDirectory:
    """A cell's own folder, removed when the cell ends (or by `sweep` when its process is killed): in RAM or on
    disk by `in_ram(model_bytes)`; paths write whatever they save into the folder they are given."""
    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-", dir=RAM_DIR if in_ram(model_bytes) else None)


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
