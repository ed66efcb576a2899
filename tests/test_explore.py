"""--explore on real cells: a fault put into timm's real filter is found among drawn combinations and shrunk to
the smallest combination that still fails, which then runs as an ordinary cell."""

from timm.models import vision_transformer

from compat_tests.core.scenario import Override, Scenario
from compat_tests.run.explore import combine, explore
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache


def test_combine_names_the_parts_and_merges_their_kwargs():
    both = combine([Override.of("patch_size_8", patch_size=8), Override.of("in_chans_1", in_chans=1)])
    assert both.name == "in_chans_1+patch_size_8" and both.as_dict() == {"in_chans": 1, "patch_size": 8}


def test_a_failing_combination_is_shrunk_to_its_smallest_and_recorded_as_a_cell(monkeypatch):
    monkeypatch.setattr(vision_transformer, "resample_patch_embed", lambda v, *a, **k: v)
    cache, ran = SourceCache(), []

    def run_cell(override: Override) -> bool:
        ran.append(override.name)
        return run_scenario(Scenario("test_vit2", "pretrained_file", override), cache).status == "passed"

    found = explore("test_vit2", 6, run_cell)
    assert len(found) == 1, ran
    parts = found[0].name.split("+")
    assert len(parts) == 2 and any(p.startswith("patch_size_") for p in parts), ran
    assert any(len(name.split("+")) > 2 for name in ran) or len(ran) > 1  # drawn wider, then shrunk
    result = run_scenario(Scenario("test_vit2", "pretrained_file", found[0]), cache)
    assert result.id == f"test_vit2-pretrained_file-{found[0].name}"
    assert result.status == "failed" and result.signature == "patch-resample-skipped", result.message
