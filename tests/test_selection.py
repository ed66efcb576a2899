import pytest
import timm

from compat_tests.run.selection import SelectionError, count_params_meta, parse_count, select
from compat_tests.run.tiers import SMOKE

REGISTRY = timm.list_models()


def test_globs_select_from_the_registry_in_order():
    sel = select(REGISTRY, models="resnet18,convnext_atto,vit_small_patch14_reg4_dinov2")
    assert sel.models == ["resnet18", "convnext_atto", "vit_small_patch14_reg4_dinov2"]
    wild = select(REGISTRY, models="resnet1*")
    assert "resnet18" in wild.models and all(m.startswith("resnet1") for m in wild.models)


def test_exclude_removes_matches():
    sel = select(REGISTRY, models="resnet*", exclude="resnet1*,*d")
    assert sel.models and not any(m.startswith("resnet1") or m.endswith("d") for m in sel.models)


def test_unknown_patterns_are_kept_for_reporting_not_dropped():
    sel = select(REGISTRY, models="resnet18,no_such_model*")
    assert sel.models == ["resnet18"] and sel.unknown == ["no_such_model*"]


def test_smoke_tier_is_curated_and_reports_what_this_release_lacks():
    sel = select(REGISTRY)
    assert 35 <= len(SMOKE) <= 50
    assert sel.models == [m for m in SMOKE if m in set(REGISTRY)]
    assert select(["resnet18"]).absent == [m for m in SMOKE if m != "resnet18"]


def test_full_tier_is_the_registry():
    assert select(REGISTRY, tier="full").models == REGISTRY


def test_bad_tier_is_a_clear_error():
    with pytest.raises(SelectionError, match="--tier"):
        select(REGISTRY, tier="huge")


@pytest.mark.parametrize("text,count", [("25M", 25_000_000), ("1.5B", 1_500_000_000), ("500k", 500_000), ("42", 42)])
def test_parse_count(text, count):
    assert parse_count(text) == count


def test_parse_count_rejects_garbage():
    with pytest.raises(SelectionError, match="--max-params"):
        parse_count("lots")


def test_meta_count_matches_a_real_build_without_allocating():
    real = sum(p.numel() for p in timm.create_model("resnet18").parameters())
    assert count_params_meta("resnet18") == real


def test_max_params_skips_larger_models_with_their_count():
    sel = select(REGISTRY, models="resnet18,vit_base_patch16_clip_224", max_params=parse_count("20M"))
    assert sel.models == ["resnet18"]
    assert sel.too_large["vit_base_patch16_clip_224"] > 80_000_000
