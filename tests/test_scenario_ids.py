from hypothesis import given
from hypothesis import strategies as st

from compat_tests.core.scenario import BASE, Override, Scenario, sample_overrides
from compat_tests.paths import all_paths

names = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)
override_names = st.from_regex(r"[a-z0-9_=.]{1,12}", fullmatch=True)


def test_id_reads_model_path_override():
    assert Scenario("vit_small_patch16_224", "safetensors").id == "vit_small_patch16_224-safetensors-base"


@given(names, st.sampled_from(sorted(all_paths())), override_names)
def test_id_splits_back_into_its_parts(model, path, override):
    scenario = Scenario(model, path, Override.of(override))
    assert scenario.id.split("-") == [model, path, override]


@given(st.lists(st.tuples(names, st.sampled_from(sorted(all_paths())), override_names), unique=True))
def test_distinct_scenarios_have_distinct_ids(cells):
    scenarios = [Scenario(m, p, Override.of(o)) for m, p, o in cells]
    assert len({s.id for s in scenarios}) == len(scenarios)


def test_override_kwargs_are_order_independent():
    assert Override.of("x", a=1, b=2) == Override.of("x", b=2, a=1)
    assert BASE.as_dict() == {}


def test_the_eight_core_paths_are_discovered_in_order():
    assert list(all_paths())[:8] == [
        "create_model", "state_dict", "safetensors", "pickle", "timm_hub", "hf_auto", "hf_to_timm", "hf_custom",
    ]


@given(st.integers(0, 12), st.integers(0, 200), st.booleans())
def test_sampling_keeps_base_and_covers_the_axis_across_models(size, index, with_base):
    axis = ([BASE] if with_base else []) + [Override.of(f"o{i}", i=i) for i in range(size)]
    chosen = sample_overrides(axis, index)
    assert (BASE in chosen) == with_base
    assert len(chosen) == min(len(axis), int(with_base) + 1)
    covered = {o.name for i in range(max(size, 1)) for o in sample_overrides(axis, i)}
    assert covered == {o.name for o in axis}
