"""merge and diff as properties over generated reports; the Markdown summary's order and content."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat_tests.core.result import STATUSES, Result
from compat_tests.report import markdown as report_markdown
from compat_tests.report import store as report_io
from compat_tests.report.store import ReportError, diff, merge

VERSIONS = {"python": "3.11.7", "torch": "2.14.1", "timm": "1.0.31", "transformers": "5.23.0"}
SIGNATURES = ["kwarg-conflict", "missing-keys", "exception:KeyError", ""]


@st.composite
def records(draw, run_id: str | None = None) -> Result:
    model = draw(st.sampled_from(["resnet18", "convnext_atto", "test_vit", "swin_t"]))
    path = draw(st.sampled_from(["state_dict", "hf_auto", "hf_custom"]))
    status = draw(st.sampled_from(STATUSES))
    signature = "" if status in ("passed", "skipped") else draw(st.sampled_from(SIGNATURES))
    return Result(id=f"{model}-{path}-base", model=model, path=path, override="base", status=status,
                  signature=signature, versions=VERSIONS,
                  run_id=run_id or draw(st.sampled_from(["20261101T000000Z-a", "20261124T000000Z-b"])))


def run(run_id: str | None = None):
    """One run's records: unique ids."""
    return st.lists(records(run_id), max_size=12, unique_by=lambda r: r.id)


@settings(max_examples=40, deadline=None)
@given(st.lists(run(), min_size=1, max_size=4), st.randoms())
def test_merge_is_order_independent_and_idempotent(shards, rnd):
    try:
        merged = merge(shards)
    except ReportError:  # generated shards may conflict (same run, same id, other outcome): refusing is consistent
        with pytest.raises(ReportError):
            merge(list(reversed(shards)))
        return
    shuffled = [list(s) for s in shards]
    rnd.shuffle(shuffled)
    for s in shuffled:
        rnd.shuffle(s)
    assert merge(shuffled) == merged
    assert merge([merged]) == merged
    assert merge([merged, merged]) == merged
    assert merge([merged, *shards]) == merged


def test_merge_refuses_different_versions_under_one_run_id():
    a = Result(id="m-state_dict-base", model="m", path="state_dict", override="base", status="passed",
               versions=VERSIONS, run_id="r1")
    b = Result(id="n-state_dict-base", model="n", path="state_dict", override="base", status="passed",
               versions={**VERSIONS, "timm": "1.0.30"}, run_id="r1")
    with pytest.raises(ReportError, match="run r1 has records with different versions"):
        merge([[a], [b]])


@settings(max_examples=40, deadline=None)
@given(run("20261101T000000Z-a"), run("20261124T000000Z-b"))
def test_diff_of_a_run_with_itself_is_empty_and_new_is_the_reverse_of_fixed(a, b):
    assert diff(a, a).empty
    assert diff(a, b).ids()["new_failures"] == diff(b, a).ids()["fixed"]
    assert diff(a, b).ids()["changed"] == diff(b, a).ids()["changed"]


def r(model, status, signature="", path="hf_auto", **kw) -> Result:
    return Result(id=f"{model}-{path}-base", model=model, path=path, override="base", status=status,
                  signature=signature, message=f"{signature}: detail of {model}", versions=VERSIONS, run_id="r", **kw)


def test_diff_names_new_fixed_and_changed():
    old = [r("a", "passed"), r("b", "failed", "kwarg-conflict"), r("c", "failed", "missing-keys")]
    new = [r("a", "failed", "kwarg-conflict"), r("b", "passed"), r("c", "failed", "silent-reinit"),
           r("d", "failed", "crash")]
    ids = diff(old, new).ids()
    assert ids == {"new_failures": ["a-hf_auto-base"], "fixed": ["b-hf_auto-base"], "changed": ["c-hf_auto-base"],
                   "new_scenarios_failing": ["d-hf_auto-base"], "not_run": [], "not_selected": []}
    assert "c-hf_auto-base  missing-keys -> silent-reinit" in "\n".join(report_io.render_diff(diff(old, new)))


def test_markdown_puts_new_failures_first_and_unnamed_before_named():
    known = {"id": "*-hf_custom-*", "signature": "nonpersistent-buffer-not-rebuilt", "reason": "meta init",
             "upstream": "not yet filed"}
    records = [r("a", "failed", "kwarg-conflict"), r("b", "failed", "kwarg-conflict"),
               r("c", "failed", "exception:KeyError"), r("d", "passed"),
               r("e", "xfailed", "nonpersistent-buffer-not-rebuilt", path="hf_custom", known=known),
               r("f", "xpassed", path="hf_custom", known=known)]
    text = report_markdown.render(records)
    assert "**3 new failure(s)**" in text
    order = [text.index(s) for s in ("## New failures", "`exception:KeyError` (1) — **needs a signature**",
                                     "`kwarg-conflict` (2)", "## Fixed upstream: remove the entry",
                                     "## Known failures (xfailed)")]
    assert order == sorted(order)
    assert "**Models (2):** a, b" in text and "timm 1.0.31" in text
    assert "| `a-hf_auto-base` |" in text


def test_a_clean_report_says_so():
    assert "**No new failures**" in report_markdown.render([r("a", "passed")])
