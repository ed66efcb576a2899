import json
import multiprocessing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat_tests.core import result as results
from compat_tests.core.result import Result

REQUIRED = {"id", "model", "path", "override", "status", "signature", "message", "versions", "duration_s"}


def a_result(i=0, status="passed", **kw):
    return Result(id=f"m{i}-state_dict-base", model=f"m{i}", path="state_dict", override="base", status=status,
                  versions={"torch": "x"}, run_id="r1", **kw)


def test_each_record_has_the_required_fields(tmp_path):
    results.append(tmp_path / "r.jsonl", a_result(status="failed", signature="missing-keys", message="a\nb"))
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert REQUIRED <= set(record)
    assert record["message"] == "a b", "messages are one line"


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status"):
        a_result(status="maybe")


def _write_many(args):
    path, worker = args
    for i in range(50):
        results.append(path, a_result(worker * 1000 + i, message="x" * 5000))


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_write_many, [(path, w) for w in range(4)])
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert len({json.loads(line)["id"] for line in lines}) == 200


def test_a_torn_last_line_from_a_killed_run_is_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append(path, a_result(1))
    with path.open("a") as f:
        f.write('{"id": "half-writ')
    assert [r.id for r in results.read(path)] == ["m1-state_dict-base"]


def test_read_filters_by_run(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append(path, a_result(1))
    other = a_result(2)
    other.run_id = "r2"
    results.append(path, other)
    assert [r.model for r in results.read(path, "r2")] == ["m2"]


def test_each_run_keeps_its_own_file_and_only_the_newest_are_kept(tmp_path):
    ids = [f"2026110{day}T000000Z-run{day}" for day in range(1, 6)]
    for run_id in ids:
        results.append(results.run_file(tmp_path, run_id), a_result(1))
    deleted = results.prune(tmp_path, keep=3, current=ids[-1])
    assert [f.stem for f in results.run_files(tmp_path)] == ids[-3:]
    assert sorted(f.stem for f in deleted) == ids[:2]
    # The current run survives any budget.
    results.prune(tmp_path, keep=0, current=ids[-1])
    assert [f.stem for f in results.run_files(tmp_path)] == ids[-1:]


def test_a_finished_run_becomes_the_report_and_run_lines_are_not_cells(tmp_path):
    run = results.run_file(tmp_path, "r1")
    results.append_run_line(run, results.run_line(results.RUN_START, "r1", selection={"tier": "smoke"}))
    results.append(run, a_result(1))
    results.append_run_line(run, results.run_line(results.RUN_END, "r1"))
    published = results.publish(tmp_path, "r1")
    assert published == tmp_path / results.REPORT_NAME and published.read_bytes() == run.read_bytes()
    assert [r.model for r in results.read(published)] == ["m1"]


@given(st.text(), st.sampled_from(results.STATUSES), st.floats(0, 1e4))
def test_records_round_trip(message, status, duration):
    r = a_result(status=status, message=message, duration_s=duration)
    assert Result.from_dict(json.loads(r.to_json())) == r
