"""Under xdist a model's cells run on one worker (one source build per model), biggest models first."""

import json
from collections import defaultdict

from compat_tests.run.isolation import _largest_first

from .test_memory import matrix


def test_each_models_cells_run_in_one_worker_that_builds_it_once(tmp_path):
    """xdist 3.8 cannot group cells under pytest 9 (it rewrites a node id pytest no longer reads); the matrix's
    scheduler groups them itself. The build log names the process of every real build: one per model, holding
    its source build and the loaded copies its state_dict and create_model cells build."""
    proc, records, _ = matrix(tmp_path, "--models", "test_vit2,test_byobnet,test_resnet", "--paths",
                              "state_dict,pickle,create_model", "-n", "2")
    assert {r["status"] for r in records} == {"passed"} and len(records) == 9, proc.stdout[-3000:]
    by_model: dict[str, list[str]] = defaultdict(list)
    for line in (tmp_path / "builds.log").read_text().splitlines():
        model, pid = line.split()
        by_model[model].append(pid)
    assert set(by_model) == {"test_vit2", "test_byobnet", "test_resnet"}
    for model, pids in by_model.items():
        assert len(set(pids)) == 1, f"{model} was built in {len(set(pids))} workers"
        assert len(pids) == 3, f"{model}: one source build and two loaded copies, not {len(pids)} builds"


def test_the_largest_models_are_queued_first(tmp_path):
    assert _largest_first(["test_vit2", "resnet50", "resnet18"], None) == ["resnet50", "resnet18", "test_vit2"]
    # A complete earlier run's durations win over sizes.
    report = tmp_path / "compat-report.jsonl"
    report.write_text("".join(json.dumps({"id": f"{m}-state_dict-base", "model": m, "path": "state_dict",
                                          "override": "base", "status": "passed", "duration_s": s}) + "\n"
                              for m, s in (("resnet50", 1.0), ("resnet18", 9.0), ("test_vit2", 5.0))))
    assert _largest_first(["test_vit2", "resnet50", "resnet18"], report) == ["resnet18", "test_vit2", "resnet50"]
