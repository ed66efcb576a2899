"""#15: a model that killed a worker is not built again for each of its remaining cells: they are recorded as
that crash, pointing at the cell that died; and the run's time account says what the crash cost."""

import json

import pytest

from compat_tests.core import result as results
from compat_tests.run.progress import worker_time

from .test_memory import matrix

CELLS = ["--models", "test_vit2", "--paths", "state_dict,pickle,create_model", "-n", "2"]


@pytest.mark.slow
def test_a_worker_sigkilled_mid_cell_does_not_get_its_model_rebuilt(tmp_path):
    """kill-on-load SIGKILLs whoever calls torch.load: the state_dict cell dies after its source was built and its
    file written. The pickle cell would die the same way in the replacement worker, and create_model would build
    the model again; both are recorded without running, and the model was built once, by the dead worker."""
    proc, records, builds = matrix(tmp_path, *CELLS, fault="kill-on-load:")
    by_id = {r["id"]: r for r in records}
    first = by_id["test_vit2-state_dict-base"]
    assert first["signature"] == "crash" and "died running" in first["message"], proc.stdout[-3000:]
    for cell in ("test_vit2-pickle-base", "test_vit2-create_model-base"):
        record = by_id[cell]
        assert (record["status"], record["signature"]) == ("failed", "crash")
        assert record["message"].startswith("not run: test_vit2 killed xdist worker gw")
        assert "in test_vit2-state_dict-base (recorded there as crash)" in record["message"]
        assert record["evidence"]["extra"]["process"]["first_crash"] == "test_vit2-state_dict-base"
    assert builds == ["test_vit2"], "only the worker that died built the model"
    assert proc.stdout.count("node down") == 1, "one worker died, not one per cell"
    # The time account: the dead worker, its replacement, and what the crash cost.
    end = json.loads((tmp_path / results.REPORT_NAME).read_text().splitlines()[-1])["run_end"]["time"]
    crashed = [w for w in end["per_worker"].values() if w["crashed"]]
    replacements = [w for w in end["per_worker"].values() if w["replacement"]]
    assert len(crashed) == 1 and len(replacements) == 1 and replacements[0]["cells"] == 2
    assert end["restarts_s"] >= replacements[0]["restarts_s"] > 0
    assert "(crashed)" in proc.stdout and "(replacement)" in proc.stdout


def test_a_workers_time_is_split_into_parts_that_add_up_to_its_wall_time():
    started = 1000.0
    account = {"started": started, "collected": started + 8, "finished": started + 100, "last": started + 100,
               "cells": 5, "cells_s": 70.0, "source_builds_s": 15.0, "memory_waits_s": 3.0, "idle_s": 2.0,
               "in_cell_since": None, "replacement": False, "peak_rss_mb": 900.0}
    whole = worker_time(account)
    assert (whole["wall_s"], whole["collection_s"], whole["restarts_s"], whole["other_s"]) == (100, 8, 0, 2)
    assert whole["in_cells_share"] == 0.85 and not whole["crashed"]
    # Killed 30 s into its sixth cell: that cell is lost to the crash, not counted as a cell.
    dead = worker_time({**account, "finished": None, "last": started + 70, "in_cell_since": started + 70},
                       died_at=started + 100)
    assert dead["crashed"] and dead["restarts_s"] == 30 and dead["other_s"] == 0
    # A replacement's startup and collection are the crash's cost too.
    replacement = worker_time({**account, "replacement": True})
    assert (replacement["collection_s"], replacement["restarts_s"]) == (0, 8)
