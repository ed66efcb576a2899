"""The cross-version matrix (architectures x the releases that wrote their files): built from records, in the
Markdown summary only when such records exist, and as a tab of the HTML page, in a real headless Chromium."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from compat_tests.core.result import Result
from compat_tests.report import cross_version
from compat_tests.report import html as report_html
from compat_tests.report import markdown as report_markdown

from .test_report_html import Browser, launch, record

VERSIONS = {"python": "3.11.7", "torch": "2.14.1", "timm": "1.0.31", "transformers": "5.23.0"}
RENAMED = "old-checkpoint-keys-renamed"
RENAMED_MESSAGE = ("2 systematic rename(s) explain 24 of 24 missing keys (blocks.{i}.gamma -> blocks.{i}.ls.gamma); "
                   "written by timm 0.9.16 (and 1 later release), read by timm 1.0.31; 12 pretrained tags")


def cv(model: str, written_by: list[str], kind: str, status: str, signature: str = "", message: str = "",
       tags: int | None = 3, evidence: bool = True, **extra) -> Result:
    """A cross_version record as the path writes it: one cell per distinct file, named after its first writer."""
    producer = written_by[0]
    override = f"{producer}_{kind}"
    ev = {"extra": {"kind": kind, "producer": producer, "written_by": written_by, "pretrained_tags": tags,
                    "stage": "load", "loader": "timm.create_model(pretrained=True)",
                    "producer_versions": {"timm": producer.removeprefix("timm"), "torch": "2.4.1"},
                    "consumer_versions": {"timm": "1.0.31", "torch": "2.14.1"}, **extra}} if evidence else {}
    return Result(id=f"{model}-cross_version-{override}@meta", model=model, path="cross_version", override=override,
                  status=status, signature=signature, message=message, versions=VERSIONS, evidence=ev,
                  run_id="20261124T000000Z-abc123",
                  override_kwargs={"cv_kind": kind, "cv_release": producer, "cv_packages": [f"timm=={producer[4:]}"],
                                   "cv_digest": hashlib.sha256(override.encode() + model.encode()).hexdigest()})


def sample() -> list[Result]:
    return [
        cv("convnext_tiny", ["timm0.9.16", "timm1.0.3"], "state_dict", "failed", RENAMED, RENAMED_MESSAGE, tags=12),
        cv("convnext_tiny", ["timm1.0.9", "timm1.0.20"], "state_dict", "passed", tags=12),
        cv("convnext_tiny", ["timm0.9.16", "timm1.0.3", "timm1.0.9", "timm1.0.20"], "headless", "passed", tags=12),
        cv("convnext_tiny", ["timm1.0.20"], "pickle", "xfailed", "pickle-attribute-missing", "no attribute 'x'",
           tags=12),
        cv("convnext_tiny", ["transformers5.0.0"], "hf_config", "passed", tags=12),
        cv("convnext_tiny", ["transformers4.48.3", "transformers4.57.x"], "hf_config", "passed", tags=12),
        cv("resnet18", ["timm0.9.16", "timm1.0.3", "timm1.0.9", "timm1.0.20"], "state_dict", "passed", tags=20),
        cv("resnet18", ["timm1.0.9"], "hub", "error", "", "boom", tags=20),
        # skipped before its judge ran: no evidence, so the override names its one producer
        cv("test_vit", ["timm1.0.15"], "hub", "skipped", message="not checkable on the meta device", evidence=False),
        cv("test_vit", ["timm1.0.3"], "state_dict", "passed", tags=0),
        record("convnext_tiny", "state_dict", "failed", "exception:KeyError", "KeyError"),
    ]


def test_columns_are_every_producer_timm_by_version_then_transformers():
    matrix = cross_version.build(sample())
    assert matrix.producers == ["timm0.9.16", "timm1.0.3", "timm1.0.9", "timm1.0.15", "timm1.0.20",
                                "transformers4.48.3", "transformers4.57.x", "transformers5.0.0"]
    assert [row.model for row in matrix.rows] == ["resnet18", "convnext_tiny", "test_vit"], "most tags first"
    shuffled = ["transformers4.57.x", "timm1.0.26", "transformers4.53.3", "timm0.9.16", "timm1.0.3", "other2.0"]
    assert sorted(shuffled, key=cross_version.producer_key) == [
        "timm0.9.16", "timm1.0.3", "timm1.0.26", "transformers4.53.3", "transformers4.57.x", "other2.0"]


def test_a_record_counts_for_every_release_that_wrote_its_file_and_a_cell_is_the_worst_over_kinds():
    rows = {row.model: row for row in cross_version.build(sample()).rows}
    convnext = rows["convnext_tiny"].cells
    assert {p: c.status for p, c in convnext.items()} == {
        "timm0.9.16": "failed", "timm1.0.3": "failed", "timm1.0.9": "passed", "timm1.0.20": "xfailed",
        "transformers4.48.3": "passed", "transformers4.57.x": "passed", "transformers5.0.0": "passed"}
    assert convnext["timm0.9.16"].failures() == [("state_dict", RENAMED)]
    assert [cross_version.origin(r)[0] for r in convnext["timm1.0.3"].records] == ["state_dict", "headless"]
    assert convnext["timm1.0.20"].signatures() == ["pickle-attribute-missing"]
    assert "timm1.0.15" not in convnext, "a release that wrote nothing for it has no cell"
    assert rows["resnet18"].cells["timm1.0.9"].failures() == [("hub", "error")], "no signature: its status"
    # The skipped record without evidence is attributed through its override; its tags are not known.
    vit = rows["test_vit"]
    assert vit.cells["timm1.0.15"].status == "skipped" and vit.pretrained_tags == 0 and not vit.failing
    assert rows["convnext_tiny"].pretrained_tags == 12


def test_totals_count_release_pairs_and_the_tags_failing_architectures_reach():
    t = cross_version.build(sample()).totals()
    assert (t.architectures, t.releases) == (3, 8)
    # convnext 7 cells, resnet18 4, test_vit 2 of which one only skipped
    assert t.checked == 12 and t.failing == 4  # convnext: 0.9.16, 1.0.3, 1.0.20; resnet18: 1.0.9
    assert (t.failing_architectures, t.with_tags, t.tags) == (2, 2, 32)
    assert cross_version.total_line(cross_version.build(sample())).startswith("4 of 12 architecture × release")


def test_markdown_has_the_section_only_with_cross_version_records():
    text = report_markdown.render(sample())
    section = text[text.index("## Cross-version"):]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert table[0] == ("| architecture | pretrained tags | timm0.9.16 | timm1.0.3 | timm1.0.9 | timm1.0.15 | "
                        "timm1.0.20 | transformers4.48.3 | transformers4.57.x | transformers5.0.0 |")
    assert table[1] == "| `resnet18` | 20 | ✓ | ✓ | error | – | ✓ | – | – | – |"
    assert table[2] == (f"| `convnext_tiny` | 12 | `{RENAMED}` | `{RENAMED}` | ✓ | – | `pickle-attribute-missing` "
                        "(known) | ✓ | ✓ | ✓ |")
    assert len(table) == 3, "only failing architectures are listed"
    plain = report_markdown.render([r for r in sample() if r.path != "cross_version"])
    assert "Cross-version" not in plain and "pretrained tags" not in plain


def test_markdown_caps_the_failing_architectures():
    records = [cv(f"arch{i:02}", ["timm1.0.3"], "state_dict", "failed", RENAMED, tags=i) for i in range(20)]
    text = report_markdown.render(records)
    table = [line for line in text[text.index("## Cross-version"):].splitlines()
             if line.startswith("| ") and not line.startswith("| ---")]
    assert table[1].startswith("| `arch19` | 19 |") and len(table) == 1 + report_markdown.MAX_ROWS + 1
    assert table[-1].startswith(f"| … | {20 - report_markdown.MAX_ROWS} more |")


TIMM = ("timm0.9.16", "timm1.0.3", "timm1.0.9", "timm1.0.15", "timm1.0.20", "timm1.0.26", "timm1.0.30")
TRANSFORMERS = ("transformers4.48.3", "transformers4.53.3", "transformers4.57.x", "transformers5.0.0")


def runs(rng: random.Random, producers: tuple[str, ...], most: int) -> list[list[str]]:
    """Producers split into consecutive runs that wrote identical files (1 to `most` distinct files)."""
    cuts = sorted(rng.sample(range(1, len(producers)), rng.randint(1, most) - 1))
    return [list(producers[a:b]) for a, b in zip([0, *cuts], [*cuts, len(producers)], strict=True)]


def full_cross_version(archs: int = 1400, seed: int = 5) -> list[Result]:
    """A structural cross_version run over the registry: ~11 distinct files per architecture, a few broken."""
    rng = random.Random(seed)
    records = []
    for i in range(archs):
        model, tags = f"arch{i:04}_tiny_patch16_224", rng.choice((0, 0, 1, 2, 3, 5, 12, 40))
        for kind, producers, most in (("state_dict", TIMM, 2), ("headless", TIMM, 2), ("hub", TIMM, 3),
                                      ("pickle", TIMM, 5), ("hf_config", TRANSFORMERS, 2)):
            for written_by in runs(rng, producers, most):
                if rng.random() < 0.004:
                    keys = [f"stages.{s}.blocks.{b}.gamma" for s in range(4) for b in range(6)]
                    records.append(cv(model, written_by, kind, "failed", RENAMED, RENAMED_MESSAGE, tags,
                                      missing=keys))
                elif rng.random() < 0.01:
                    records.append(cv(model, written_by[:1], kind, "skipped", message="not checkable on the meta "
                                      "device: an op without a meta kernel", evidence=False))
                else:
                    records.append(cv(model, written_by, kind, "passed", tags=tags))
    return records


def test_a_1400_architecture_cross_version_page_stays_small():
    records = full_cross_version()
    assert 12_000 <= len(records) <= 16_000 and len({r.model for r in records}) == 1400
    matrix = cross_version.build(records)
    assert len(matrix.producers) == 11 and matrix.totals().failing_architectures > 20
    text = report_html.render(records)
    data = json.loads(text[text.index('json">') + 6:text.index("</script>")])
    tab = len(json.dumps(data["cross_version"], separators=(",", ":")))
    assert tab < 400_000, f"the cross-version tab's data is {tab / 1e3:.0f} kB"
    assert len(text.encode()) < 6_000_000, f"the page is {len(text.encode()) / 1e6:.1f} MB"
    assert text.count("<td") == 0, "the page draws its cells itself"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Browser:
    b = launch(tmp_path_factory)
    file = report_html.write(tmp_path_factory.mktemp("xv") / "report.html", sample())
    b.open(file.as_uri() + "#cross-version")
    yield b
    b.close()


def xv_rows(b: Browser) -> list[str]:
    return b.js("Array.from(document.querySelectorAll('#xv tbody tr')).map(r => r.dataset.model)")


def test_the_cross_version_tab_shows_the_failing_cell_with_its_signature(page):
    assert page.console_errors() == []
    assert page.js("document.getElementById('xv-wrap').hidden") is False, "the #cross-version link opens the tab"
    assert page.js("document.getElementById('matrix-wrap').hidden") is True
    assert xv_rows(page) == ["resnet18", "convnext_tiny", "test_vit"]
    hint = page.js("document.getElementById('details').innerText")
    assert "kinds of file (state_dict, headless, pickle, hf_config, hub)" in hint, "the pane explains the tab"
    assert page.js("document.getElementById('xv-total').textContent").startswith("4 of 12 architecture")
    headers = page.js("Array.from(document.querySelectorAll('#xv thead th')).map(t => t.textContent)")
    assert headers[:3] == ["architecture", "pretrained tags", "timm0.9.16"] and headers[-1] == "transformers5.0.0"
    cells = page.js("Array.from(document.querySelectorAll('#xv tr[data-model=\"convnext_tiny\"] td'))"
                    ".map(t => t.dataset.status || t.textContent)")
    assert cells == ["12", "failed", "failed", "passed", "\u2013", "xfailed", "passed", "passed", "passed"]
    selector = '#xv tr[data-model="convnext_tiny"] td[data-col="0"]'
    assert page.js(f"document.querySelector('{selector}').dataset.signature") == RENAMED
    page.js(f"document.querySelector('{selector}').dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}}))")
    assert RENAMED in page.js(f"document.querySelector('{selector}').title")
    page.click(selector)
    details = page.js("document.getElementById('details').innerText")
    assert "convnext_tiny \u00b7 timm0.9.16" in details and f"state_dict: failed [{RENAMED}]" in details
    assert "2 systematic rename(s)" in details and "headless: passed" in details
    assert "timm0.9.16, timm1.0.3" in details, "the releases that wrote the same file are named"
    page.click('#details .xv-record[data-id="convnext_tiny-cross_version-timm0.9.16_state_dict@meta"] button')
    assert page.js("document.querySelector('#details h2').textContent") == (
        "convnext_tiny-cross_version-timm0.9.16_state_dict@meta"), "the full record, its id rebuilt"
    assert page.console_errors() == []


def test_the_name_filter_and_the_failing_toggle_narrow_the_rows(page):
    search = page.js("(() => { const s = document.getElementById('xv-model'); s.value = 'NEXT'; "
                     "s.dispatchEvent(new Event('input')); "
                     "return document.getElementById('xv-shown').textContent; })()")
    assert xv_rows(page) == ["convnext_tiny"] and search == "1 of 3 architectures shown"
    page.js("(() => { const s = document.getElementById('xv-model'); s.value = ''; "
            "s.dispatchEvent(new Event('input')); })()")
    page.click("#xv-failing")
    assert xv_rows(page) == ["resnet18", "convnext_tiny"]
    page.click("#xv-failing")
    assert xv_rows(page) == ["resnet18", "convnext_tiny", "test_vit"]
    page.click('#tabs button[data-tab="matrix"]')
    assert page.js("document.getElementById('xv-wrap').hidden") is True
    assert page.js("document.querySelector('#matrix td[data-col=\"state_dict\"]').dataset.status") == "failed"
    assert page.console_errors() == []


def test_a_page_without_cross_version_records_has_no_tab(tmp_path):
    text = report_html.render([record("resnet18", "state_dict", "passed")])
    assert 'id="tabs"' not in text and 'id="xv"' not in text
