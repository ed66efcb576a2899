import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat_tests.core import result as results
from compat_tests.core.scenario import Scenario
from compat_tests.run.resume import last_run
from compat_tests.run.sharding import ShardError, assign, parse_shard, recorded_durations, select_shard

PATHS = ("create_model", "state_dict", "pickle")
models = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), unique=True, min_size=1, max_size=30)


def cells(names):
    return [Scenario(m, p) for m in names for p in PATHS]


@given(models, st.integers(1, 6), st.dictionaries(st.text(max_size=5), st.floats(0, 100), max_size=5))
def test_shards_partition_the_matrix_and_keep_models_whole(names, count, durations):
    scenarios = cells(names)
    shards = assign(scenarios, count, durations)
    flat = [s.id for shard in shards for s in shard]
    assert sorted(flat) == sorted(s.id for s in scenarios)
    owner = {}
    for i, shard in enumerate(shards):
        for s in shard:
            assert owner.setdefault(s.model, i) == i, "a model's cells never straddle shards"


@given(models, st.integers(1, 6))
def test_shards_are_deterministic(names, count):
    scenarios = cells(names)
    assert assign(scenarios, count, {}) == assign(list(scenarios), count, {})


def test_recorded_durations_balance_the_load():
    scenarios = cells(["big", "a", "b", "c"])
    durations = {f"big-{p}-base": 30.0 for p in PATHS}
    one, two = assign(scenarios, 2, durations)
    assert {s.model for s in one} == {"big"} and {s.model for s in two} == {"a", "b", "c"}


def test_parse_shard_rejects_bad_input():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1-2"):
        with pytest.raises(ShardError, match="--shard"):
            parse_shard(bad)


def test_select_shard_and_durations_from_a_report(tmp_path):
    report = tmp_path / "r.jsonl"
    results.append(report, results.Result(id="big-pickle-base", model="big", path="pickle", override="base",
                                          status="passed", duration_s=99.0, run_id="r"))
    durations = recorded_durations([report])
    assert durations == {"big-pickle-base": 99.0}
    scenarios = cells(["big", "small"])
    assert {s.model for s in select_shard(scenarios, "1/2", durations)} == {"big"}


def test_last_run_finds_the_finished_cells_of_the_latest_run(tmp_path):
    assert last_run(tmp_path) == (None, set())
    old, new = "20261101T000000Z-aaaaaa", "20261102T000000Z-bbbbbb"  # run ids start with their start time
    for run, cell in ((old, "a-pickle-base"), (new, "b-pickle-base"), (new, "c-pickle-base")):
        results.append(results.run_file(tmp_path, run), results.Result(id=cell, model=cell[0], path="pickle",
                                                                       override="base", status="passed", run_id=run))
    assert last_run(tmp_path) == (new, {"b-pickle-base", "c-pickle-base"})
