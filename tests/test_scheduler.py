"""Under xdist a model's cells run on one worker (one source build per model), biggest models first."""

import json
from collections import defaultdict
from types import SimpleNamespace

import pytest

from compat_tests.run import isolation
from compat_tests.run.isolation import _crash_safe_loadgroup, _largest_first, model_sizes
from compat_tests.run.memory import model_need, need, next_that_fits, planned
from compat_tests.run.selection import fp32_bytes_meta

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
    models = ["test_vit2", "resnet50", "resnet18"]
    assert _largest_first(models, None, model_sizes(models)) == ["resnet50", "resnet18", "test_vit2"]
    # A complete earlier run's durations win over sizes.
    report = tmp_path / "compat-report.jsonl"
    report.write_text("".join(json.dumps({"id": f"{m}-state_dict-base", "model": m, "path": "state_dict",
                                          "override": "base", "status": "passed", "duration_s": s}) + "\n"
                              for m, s in (("resnet50", 1.0), ("resnet18", 9.0), ("test_vit2", 5.0))))
    assert _largest_first(models, report, model_sizes(models)) == ["resnet18", "test_vit2", "resnet50"]


def test_a_worker_is_handed_the_first_model_that_fits_beside_the_others():
    needs = {"big": 10, "mid": 6, "small": 1}
    assert next_that_fits(["big", "mid", "small"], needs, 0, 12) == "big"
    assert next_that_fits(["big", "mid", "small"], needs, 10, 12) == "small"  # big runs elsewhere: mid waits
    assert next_that_fits(["big", "mid"], needs, 10, 12) == "mid"  # nothing fits: the one that needs least


def test_a_model_that_cannot_start_yet_is_not_passed_over_until_it_runs_alone_at_the_end():
    """The other worker runs a mid-sized model beside which the biggest cannot start: this worker takes a model that
    fits beside both, so the biggest starts when the other's model ends rather than after every mid-sized one."""
    needs = {"big": 16, "mid": 8, "mid2": 8, "small": 2}
    queue = ["big", "mid", "mid2", "small"]
    assert next_that_fits(queue, needs, 8, 21) == "small"  # not mid, beside which big could not start either
    assert next_that_fits(queue, needs, 2, 21) == "big"  # beside the small one, big starts
    # Where nothing fits beside the waiting model, the first that fits beside the others, as before.
    assert next_that_fits(queue, {**needs, "big": 20}, 8, 21) == "mid"


def test_a_models_need_counts_only_the_cells_that_can_run():
    size = 10**9
    assert model_need(["create_model", "hf_to_timm"], size, 100 * size) == need("hf_to_timm", size).total
    # hf_to_timm's 4 copies cannot fit in 3.5 GB: its gate skips it, and the model holds create_model's 2 at most.
    assert model_need(["create_model", "hf_to_timm"], size, int(3.5 * size)) == need("create_model", size).total
    assert model_need(["hf_to_timm"], size, size) == 0 and model_need(["create_model"], None, size) == 0


def test_a_cell_that_needs_nearly_the_whole_machine_does_not_make_its_model_run_alone(monkeypatch):
    """aimv2_1b on 24 GiB: its hf_to_timm cell needs 21.0 GB of 21.5, and the model's other cells at most 15.9. The
    scheduler plans the model by the others (a mid-sized model can run beside it); the big cell's gate waits for the
    other worker, or skips it. A model with no other cell is planned by its big one, and so runs alone."""
    from compat_tests.run import memory

    monkeypatch.setattr(memory, "in_ram", lambda model_bytes: False)  # files on disk, as on 24 GiB
    size = int(4.93e9)
    paths = ["create_model", "state_dict", "pickle", "hf_to_timm"]
    capacity = int(21.5e9)
    assert need("hf_to_timm", size).total <= capacity  # it could run: the gate decides
    assert model_need(paths, size, capacity) == need("state_dict", size).total <= planned(capacity)
    assert model_need(["hf_to_timm"], size, capacity) == need("hf_to_timm", size).total


class Node:
    """The scheduler's view of an xdist worker (as pytest-xdist's own scheduler tests model it)."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_two_models_too_big_to_share_the_memory_budget_never_run_side_by_side():
    """Under a 750 MB budget, resnet50 (472 MB for a create_model cell) and resnet34 (442 MB) cannot run at once,
    while either fits beside a tiny test model (about 270 MB). Largest first alone would hand them to the two
    workers together, each then waiting at its memory gate for the other; the scheduler holds resnet34 back
    until resnet50 is done and gives the other worker the tiny models meanwhile."""
    models = ["resnet34", "resnet50", "test_vit2", "test_resnet", "test_byobnet"]
    collection = [f"compat_tests/test_matrix.py::test_scenario[{m}-create_model-base@{m}]" for m in models]
    config = SimpleNamespace(getvalue=lambda name: ["2*popen"] if name == "tx" else None,
                             option=SimpleNamespace(loadscopereorder=False))
    scheduler = _crash_safe_loadgroup(budget=750 * 2**20)(config)
    nodes = [Node("gw0"), Node("gw1")]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    assert scheduler.needs["resnet50"] + scheduler.needs["resnet34"] > scheduler.capacity
    done: dict[Node, int] = {node: 0 for node in nodes}
    order = []
    while any(done[n] < len(n.sent) for n in nodes):
        running = {n: collection[n.sent[done[n]]].split("[")[1].split("-")[0] for n in nodes if done[n] < len(n.sent)}
        assert set(running.values()) != {"resnet50", "resnet34"}, f"side by side: {running}"
        node = min(running, key=lambda n: (running[n].startswith("resnet"), n.gateway.id))  # small ones end first
        order.append(running[node])
        scheduler.mark_test_complete(node, node.sent[done[node]])
        done[node] += 1
    assert sorted(order) == sorted(models) and scheduler.tests_finished


def test_model_sizes_are_counted_once_per_timm_release_and_kept_in_the_cache(monkeypatch):
    class Cache(dict):
        """pytest's cache as the scheduler uses it: JSON values under string keys."""

        def get(self, key, default):
            return super().get(key, default)

        def set(self, key, value):
            self[key] = json.loads(json.dumps(value))

    cache = Cache()
    first = model_sizes(["resnet18", "test_vit2"], cache)
    assert first == {"resnet18": fp32_bytes_meta("resnet18"), "test_vit2": fp32_bytes_meta("test_vit2")}
    monkeypatch.setattr(isolation, "fp32_bytes_meta", lambda name: pytest.fail(f"{name} was counted again"))
    assert model_sizes(["test_vit2", "resnet18"], cache) == first
    # Over RANK_BY_SIZE_MAX models the controller counts nothing: only a cache that knows them all is used.
    monkeypatch.setattr(isolation, "RANK_BY_SIZE_MAX", 1)
    assert model_sizes(["resnet18", "test_vit2"], cache) == first
    assert model_sizes(["resnet18", "resnet34"], cache) == {}
