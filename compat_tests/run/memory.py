"""Whether a cell's model fits in memory, decided before it is built, and cells too big to share the machine run
one at a time.

At its peak a cell holds several copies of its model: the source, the loaded model, and on most paths the
loaded state dict or a file in RAM. Peak RSS of one cell per process over the RSS before its source was built,
in copies of the model's float32 state (ViT-B/16, 330 MB; files on disk; hf_* with the known failure's
workaround, as the baseline runs them): create_model 2.2, pickle 2.2, hf_auto 2.3, hf_custom 2.3, state_dict 3.1,
safetensors 3.1, timm_hub 3.1, hf_to_timm 4.2 (it holds TimmWrapper's model and timm's at once). `COPIES` rounds
them down to whole copies and `HEADROOM` covers the rest (the reference output, the tensors kept for the oracle,
a forward's activations); a file in RAM (`workdirs.in_ram`) is one more copy each.

A cell whose need exceeds the memory available to it is skipped with the figures, before its model is built
(`--max-params` stays the user's own budget; `--memory-budget` caps the available figure). Under xdist the
workers share the machine through a ledger (`Admission`): a cell waits while the other workers' cells leave it
too little, and is skipped only when it could not fit even with them gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .workdirs import available_bytes, in_ram

GB = 10**9
# Whole copies of the model each path holds at its peak, the source included (measured, above).
COPIES = {"create_model": 2, "pickle": 2, "hf_auto": 2, "hf_custom": 2, "state_dict": 3, "safetensors": 3,
          "timm_hub": 3, "hf_to_timm": 4}
DEFAULT_COPIES = 3
# Files a path writes, each a copy of the state (hf_to_timm writes timm's folder, then TimmWrapper's).
FILES = {"create_model": 0, "hf_to_timm": 2}
DEFAULT_FILES = 1
# Beyond whole copies: the measured peaks' fractions, torch's allocator, a batch-2 forward's activations.
HEADROOM_SHARE = 0.25
HEADROOM_MIN = 256 * 2**20
# The share of the memory measured before the run that the scheduler plans models in. What a cell finds available
# later moves with the workers' own growth and the other worker's files in RAM: 18.4 to 22.4 GB in timm44 runs,
# against 21.5 GB measured before them on 24 GiB.
PLANNED_SHARE = 0.85

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*$")
_SCALE = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class MemoryBudgetError(ValueError):
    """A --memory-budget that is not a size."""


def parse_size(text: str) -> int:
    """'8G' -> 8 GiB in bytes; '512M', '1.5GB', '2GiB' and plain byte counts too."""
    m = _SIZE.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise MemoryBudgetError(f"--memory-budget expects a size like 8G, 512M or 1.5GB, not {text!r}")
    return int(float(m.group(1)) * _SCALE[m.group(2).lower()])


@dataclass(frozen=True)
class Need:
    """What one cell of a model holds at its peak."""

    model_bytes: int
    copies: int  # in memory, the source included
    files_in_ram: int

    @property
    def headroom(self) -> int:
        return max(HEADROOM_MIN, int(HEADROOM_SHARE * self.model_bytes))

    @property
    def total(self) -> int:
        return self.model_bytes * (self.copies + self.files_in_ram) + self.headroom

    def refusal(self, available: int, capped: bool = False) -> str:
        """The skip reason: the need, how it is made up, and what was available."""
        files = f", {self.files_in_ram} of them its file{'s' if self.files_in_ram > 1 else ''} in RAM" \
            if self.files_in_ram else ""
        return (f"skipped: needs ~{size_text(self.total)} ({self.copies + self.files_in_ram} copies of "
                f"{size_text(self.model_bytes)} fp32{files}, +{size_text(self.headroom)} headroom), "
                f"{size_text(available)} available{' (capped by --memory-budget)' if capped else ''}")


def size_text(n: int) -> str:
    """Bytes for a reader: '7.4 GB', '47 MB'."""
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / 10**6:.0f} MB"


def need(path: str, model_bytes: int) -> Need:
    """A cell of `path` over a model of `model_bytes` float32 bytes; its files count when they go to RAM, which
    `workdirs.in_ram` decides from the machine's free memory (a --memory-budget does not move them)."""
    files = FILES.get(path, DEFAULT_FILES) if in_ram(model_bytes) else 0
    return Need(model_bytes, COPIES.get(path, DEFAULT_COPIES), files)


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of a process now (this one by default); None when it is gone, or a zombie (a dead worker
    its controller has not reaped yet holds no memory)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") or None


class Ledger:
    """What the run's processes hold and want, in one small JSON file beside the run's file, read and rewritten
    under an exclusive flock: per pid its state (`running` a cell, `waiting` for memory, or `idle`), the bytes its
    cell will still allocate (`need`), its RSS when the cell entered, its RSS before it held any model
    (`baseline`), and since when it waits. Entries of processes that died are dropped on reading."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / "memory.json"
        self._lock = os.open(folder / "memory.lock", os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def open(self) -> Iterator[dict[str, dict]]:
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            try:
                entries = json.loads(self.file.read_text())
            except (OSError, ValueError):
                entries = {}
            entries = {pid: e for pid, e in entries.items() if rss_bytes(int(pid)) is not None}
            yield entries
            partial = self.file.with_suffix(".partial")
            partial.write_text(json.dumps(entries))
            partial.replace(self.file)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)


def _outstanding(entry: dict) -> int:
    """What a running cell has yet to allocate: its need, less what its process has grown by since it entered."""
    now = rss_bytes(int(entry["pid"])) or 0
    return max(0, entry["need"] - max(0, now - entry["rss_entry"]))


class Admission:
    """Admits each cell of one process: `with admission.cell(path, bytes, held, release) as refusal:` runs the
    cell when `refusal` is None, else skips it with that reason. `held()` is the memory this process already holds
    for the cell's model (its cached source); `release()` drops this process's cached sources.

    Alone (no xdist), a cell runs when its need fits in the memory available. Under xdist the workers keep a
    ledger: a cell enters when its need fits in what is available less what the other workers' running cells
    have yet to allocate and what earlier waiting cells asked for; otherwise it waits its turn (first come, first
    served), and a worker waiting behind another drops its cached source, so the first in line gets that memory
    too. A cell is skipped, not kept waiting, when it would not fit even with every other worker back at the
    memory it held before it built any model, or when it is first in line, nothing else runs and it still does
    not fit."""

    POLL_S = 0.5

    def __init__(self, folder: Path | None, workers: int = 1, budget: int | None = None) -> None:
        self.workers = max(1, workers)
        self.budget = budget
        self._folder = folder
        self._ledger: Ledger | None = None
        self.pid = str(os.getpid())
        self.baseline = rss_bytes() or 0  # before this process builds any model
        # Seconds spent waiting for the other workers' cells to leave this one room.
        self.waited_s = 0.0

    def available(self, held: int) -> int:
        free = available_bytes() + held
        return free if self.budget is None else min(free, self.budget)

    def ledger(self) -> Ledger | None:
        if self._ledger is None and self.workers > 1 and self._folder is not None:
            self._ledger = Ledger(self._folder)
        return self._ledger

    @contextlib.contextmanager
    def cell(self, path: str, model_bytes: int | None, held: Callable[[], int],
             release: Callable[[], None]) -> Iterator[str | None]:
        ledger = self.ledger()
        if not model_bytes:  # not known before the build: the cell runs as it always did
            yield None
            return
        if ledger is None:
            available = self.available(held())
            wanted = need(path, model_bytes)
            yield self._refusal(wanted, available) if wanted.total > available else None
            return
        started = time.perf_counter()
        refusal = self._enter(ledger, need(path, model_bytes), held, release)
        self.waited_s += time.perf_counter() - started
        try:
            yield refusal
        finally:
            with ledger.open() as entries:
                entries[self.pid] = self._entry("idle")

    def _entry(self, state: str, need: int = 0, since: float | None = None) -> dict:
        return {"pid": int(self.pid), "state": state, "need": need, "rss_entry": rss_bytes() or 0,
                "baseline": self.baseline, "since": since}

    def _enter(self, ledger: Ledger, wanted: Need, held: Callable[[], int], release: Callable[[], None]) -> str | None:
        since: float | None = None
        polls = 0
        while True:
            behind = False
            with ledger.open() as entries:
                mine = held()
                available = self.available(mine)
                others = [e for pid, e in entries.items() if pid != self.pid]
                running = [e for e in others if e["state"] == "running"]
                ahead = [e for e in others if e["state"] == "waiting" and (since is None or e["since"] < since)]
                room = available - sum(_outstanding(e) for e in running) - sum(e["need"] for e in ahead)
                if wanted.total <= room:
                    entries[self.pid] = self._entry("running", wanted.total - mine)
                    return None
                # What this cell could have if every other worker went back to what it held before any model.
                reclaimable = sum(max(0, (rss_bytes(int(e["pid"])) or 0) - e["baseline"]) for e in others)
                capacity = available + reclaimable if self.budget is None else min(self.budget,
                                                                                   available + reclaimable)
                stuck = since is not None and not running and not ahead and polls >= 4
                if wanted.total > capacity or stuck:
                    entries[self.pid] = self._entry("idle")
                    return self._refusal(wanted, available if stuck else capacity)
                since = since if since is not None else time.time()
                entries[self.pid] = self._entry("waiting", wanted.total - mine, since)
                behind = bool(ahead)
            if behind:
                release()  # the cell first in line may need what this worker's cached source holds
            polls += 1
            time.sleep(self.POLL_S)

    def _refusal(self, wanted: Need, available: int) -> str:
        return wanted.refusal(available, capped=self.budget is not None and available >= self.budget)


def planned(available: int, budget: int | None = None) -> int:
    """What the scheduler counts on sharing: the planned share of `available`, the memory measured before the run,
    which moves; or a --memory-budget below that, which does not."""
    share = int(PLANNED_SHARE * available)
    return share if budget is None else min(share, budget)


def model_need(paths: Iterable[str], model_bytes: int | None, capacity: int, shared: int | None = None) -> int:
    """The most one model's cells hold at once while another model may run beside it; 0 when the size is unknown.

    A cell whose need exceeds `capacity` is skipped by its memory gate and holds nothing. A cell needing more than
    `shared` (by default the `planned` share of `capacity`) runs only once the other workers have drained, which its
    gate sees to, or is skipped; counting it here would make every cell of its model run alone. aimv2_1b's
    hf_to_timm cell (four copies, 21.0 GB of 21.5) did, and its model ran last, alone, for 290 s of an 890 s run.
    Such cells count only when the model has no other."""
    if not model_bytes:
        return 0
    runnable = [total for total in (need(path, model_bytes).total for path in paths) if total <= capacity]
    shared = planned(capacity) if shared is None else shared
    beside = [total for total in runnable if total <= shared]
    return max(beside or runnable, default=0)


def next_that_fits(queue: Sequence[str], needs: Mapping[str, int], held_elsewhere: int, capacity: int) -> str:
    """The model a worker should start next: the first of `queue` (largest first) whose cells fit in `capacity`
    beside `held_elsewhere`, what the other workers' models hold; else the one that needs least. So two models too
    big to share the machine are not started side by side, each worker then waiting on the other's cells, while
    models that fit beside them are left queued.

    While the first of the queue cannot start, the model chosen is the first that fits beside it too, where one
    does: so it starts as soon as the other worker's model ends, instead of being passed over for every mid-sized
    model that keeps the other worker busy. (A model whose every cell needs the whole machine runs alone wherever it
    is placed; one with a single such cell is planned by its others, `model_need`.)"""
    def needed(scope: str) -> int:  # not `need`, which names one cell's figure in this module
        return needs.get(scope, 0)

    fitting = [scope for scope in queue if needed(scope) + held_elsewhere <= capacity]
    if not fitting:
        return min(queue, key=needed)
    first = queue[0]
    if fitting[0] == first:
        return first
    return next((scope for scope in fitting if needed(scope) + needed(first) <= capacity), fitting[0])
