"""The oracle and signatures against real faults in real timm models (no mocks: real state dicts,
real load_state_dict, real forward)."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat_tests.core.evidence import from_exception
from compat_tests.judge.oracle import compare_outputs, diff_state, judge
from compat_tests.signatures.catalog import classify

from .conftest import fresh


def load_into_fresh(source, state, strict=False):
    """What a loader does: a fresh model, the checkpoint loaded into it; returns the roundtrip dict."""
    model = fresh(source)
    report = model.load_state_dict(state, strict=strict)
    return {"model": model, "missing_keys": report.missing_keys, "unexpected_keys": report.unexpected_keys}


def verdict(source, state):
    """(signature, message) for loading `state`, or None when the oracle finds the load faithful."""
    evidence = judge(source, load_into_fresh(source, state))
    return None if evidence.clean else classify(evidence)


def saved(source):
    return {k: v.clone() for k, v in source.model.state_dict().items()}


def test_a_faithful_load_is_clean(vit_ls, byob):
    assert verdict(vit_ls, saved(vit_ls)) is None
    assert verdict(byob, saved(byob)) is None


def test_one_renamed_key_is_missing_keys(vit_ls):
    state = saved(vit_ls)
    state["blocks.0.attn.qkv.renamed"] = state.pop("blocks.0.attn.qkv.weight")
    name, message = verdict(vit_ls, state)
    assert name == "missing-keys" and "blocks.0.attn.qkv.weight" in message


def test_strict_load_error_text_gives_the_same_key_evidence(vit_ls):
    state = saved(vit_ls)
    state["blocks.0.attn.qkv.renamed"] = state.pop("blocks.0.attn.qkv.weight")
    with pytest.raises(RuntimeError) as raised:
        fresh(vit_ls).load_state_dict(state, strict=True)
    evidence = from_exception(raised.value)
    assert evidence.missing_keys == ["blocks.0.attn.qkv.weight"]
    assert evidence.unexpected_keys == ["blocks.0.attn.qkv.renamed"]
    assert classify(evidence)[0] == "missing-keys"


def test_one_ulp_on_one_tensor_is_a_tensor_mismatch(vit_ls):
    state = saved(vit_ls)
    w = state["blocks.1.mlp.fc1.weight"]
    w.view(-1)[7] = torch.nextafter(w.view(-1)[7], torch.tensor(float("inf")))
    name, message = verdict(vit_ls, state)
    assert name == "tensor-mismatch" and "blocks.1.mlp.fc1.weight" in message


def test_a_buffer_silently_left_at_init_is_silent_reinit(byob):
    state = saved(byob)
    del state["stem.bn.running_var"]
    model = fresh(byob)
    model.load_state_dict(state, strict=False)  # a loader that drops the key and says nothing
    evidence = judge(byob, {"model": model})
    assert evidence.at_init == ["stem.bn.running_var"]
    assert classify(evidence)[0] == "silent-reinit"


def test_transformers_legacy_gamma_rename_on_layerscale(vit_ls):
    """transformers <= 4.48 renamed every key containing 'gamma' to 'weight' before loading."""
    state = {k.replace("gamma", "weight"): v for k, v in saved(vit_ls).items()}
    name, message = verdict(vit_ls, state)
    assert name == "layerscale-gamma-renamed"
    assert "blocks.0.ls1.gamma -> blocks.0.ls1.weight" in message
    with pytest.raises(RuntimeError) as raised:
        fresh(vit_ls).load_state_dict(state, strict=True)
    assert classify(from_exception(raised.value))[0] == "layerscale-gamma-renamed"


def test_a_wrapper_prefix_is_named(vit_ls):
    state = {"timm_model." + k: v for k, v in saved(vit_ls).items()}
    name, message = verdict(vit_ls, state)
    assert name == "key-prefix-mismatch" and "'timm_model.'" in message


def test_a_shape_change_is_a_shape_mismatch(vit_ls):
    state = saved(vit_ls)
    state["head.weight"] = state["head.weight"][:5]
    state["head.bias"] = state["head.bias"][:5]
    with pytest.raises(RuntimeError) as raised:
        fresh(vit_ls).load_state_dict(state, strict=True)
    name, message = classify(from_exception(raised.value))
    assert name == "shape-mismatch" and "head.weight" in message


def test_equal_weights_with_a_changed_forward_is_an_output_mismatch(byob):
    loaded = load_into_fresh(byob, saved(byob))
    model = loaded["model"]
    loaded["forward"] = lambda x: model(x) * (1 + 1e-3)
    name, _ = classify(judge(byob, loaded))
    assert name == "output-mismatch"


def test_a_forward_that_raises_after_load_keeps_the_exception(byob):
    loaded = load_into_fresh(byob, saved(byob))
    loaded["model"].stem.forward = None  # state intact, forward broken
    evidence = judge(byob, loaded)
    assert evidence.exception["type"] == "TypeError"
    assert classify(evidence)[0] == "exception:TypeError"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_changed_tensor_is_found_and_named(vit_ls, data):
    state = saved(vit_ls)
    key = data.draw(st.sampled_from(sorted(k for k, v in state.items() if v.is_floating_point())))
    index = data.draw(st.integers(0, state[key].numel() - 1))
    flat = state[key].view(-1)
    flat[index] = flat[index] + data.draw(st.sampled_from([1e-3, -1.0, 10.0]))
    report = diff_state(vit_ls.model.state_dict(), state)
    assert [k for k, _ in report["values"]] == [key]
    assert not report["missing"] and not report["unexpected"] and not report["shape"]


@given(st.floats(-1e6, 1e6, allow_nan=False), st.integers(1, 50))
def test_outputs_within_tolerance_are_ok_and_beyond_are_not(scale, n):
    ref = torch.linspace(-1, 1, n, dtype=torch.float64) * scale
    tol = 1e-5 * max(1.0, ref.abs().max().item())
    assert compare_outputs(ref, ref + tol / 2, 1e-5)["ok"]
    assert not compare_outputs(ref, ref + tol * 4, 1e-5)["ok"]
    assert not compare_outputs(ref, ref[:-1] if n > 1 else ref.repeat(2), 1e-5)["ok"]


def test_source_values_differ_from_any_constant_initialiser(vit_ls, byob):
    for source in (vit_ls, byob):
        assert source.constant_inits, "constant-initialised tensors are tracked"
        state = source.model.state_dict()
        for key, init in source.constant_inits.items():
            assert not torch.equal(state[key], init), key


def test_judging_does_not_change_the_source(byob):
    before = copy.deepcopy(byob.model.state_dict())
    judge(byob, load_into_fresh(byob, saved(byob)))
    after = byob.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_legacy_rename_anywhere_in_a_key_is_named():
    """cait's `gamma_1` became `weight_1` under transformers <= 4.48: a substring rename, not a suffix."""
    import timm

    with torch.device("meta"):  # key sets only: nothing allocated
        model = timm.create_model("cait_xxs24_224")
    state = {k.replace("gamma", "weight"): v for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError) as raised:
        model.load_state_dict(state, strict=True, assign=True)
    name, message = classify(from_exception(raised.value))
    assert name == "layerscale-gamma-renamed" and "blocks.0.gamma_1 -> blocks.0.weight_1" in message


def test_a_cache_the_forward_recomputes_is_not_a_buffer_the_load_failed_to_rebuild():
    # ConViT keeps rel_indices as a (1,1,1,3) placeholder and computes it for the input in forward: the source
    # has run a forward, a freshly loaded model has not, and that is no loading failure.
    from compat_tests.core.scenario import Scenario
    from compat_tests.run.runner import run_scenario
    from compat_tests.source.models import SourceCache

    cache = SourceCache()
    for path in ("create_model", "state_dict"):
        result = run_scenario(Scenario("convit_tiny", path), cache)
        assert result.status == "passed", result.message


def test_the_first_diverging_layer_is_named_and_float_noise_there_is_not_a_failure():
    import copy

    import timm
    import torch

    from compat_tests.core.evidence import Evidence
    from compat_tests.judge.oracle import LAYER_NOISE_RTOL, explain_output, first_divergence

    torch.manual_seed(0)
    source = timm.create_model("test_vit2").eval()
    x = torch.randn(1, 3, 160, 160)
    # One weight nudged in its last bits (what another kernel path does to a result) ...
    noisy = copy.deepcopy(source)
    with torch.no_grad():
        noisy.blocks[1].mlp.fc1.weight.mul_(1 + 1e-7)
    found = first_divergence(source, noisy, x)
    assert found["module"].startswith("blocks.1.mlp.fc1") and found["relative"] <= LAYER_NOISE_RTOL
    evidence = Evidence(output={"ok": False, "max_error": 1.0, "tolerance": 0.1})
    explain_output(evidence, source, noisy, x)
    assert evidence.output["ok"] and evidence.output["amplified_noise"]
    # ... and one really changed: named, and still a failure.
    broken = copy.deepcopy(source)
    with torch.no_grad():
        broken.blocks[1].attn.proj.bias.add_(1.0)
    evidence = Evidence(output={"ok": False, "max_error": 1.0, "tolerance": 0.1})
    explain_output(evidence, source, broken, x)
    assert not evidence.output["ok"] and evidence.output["first_divergence"]["module"].startswith("blocks.1.attn")


def test_a_buffer_left_on_the_meta_device_is_named_not_a_harness_error():
    """What transformers 4.51-4.57 leaves in a TimmWrapper's Swin: a computed buffer with no data (built from
    parameters on the meta device). The oracle must name it, and so must the error torch raises for it."""
    import timm

    from compat_tests.source.models import build_source

    source = build_source("test_vit_relpos")
    model = timm.create_model("test_vit_relpos", pretrained=False).eval()
    model.load_state_dict(source.model.state_dict())
    owner, name = next((m, n) for m in model.modules() for n, b in m._buffers.items()
                       if b is not None and n in m._non_persistent_buffers_set)
    owner.register_buffer(name, torch.empty_like(owner._buffers[name], device="meta"), persistent=False)
    evidence = judge(source, {"model": model})
    assert classify(evidence)[0] == "nonpersistent-buffer-not-rebuilt"
    # What Swin's constructor raises when it copies a mask computed from parameters on meta into its buffer.
    with pytest.raises(NotImplementedError) as raised:
        torch.zeros(3).copy_(torch.empty(3, device="meta"))
    assert classify(from_exception(raised.value))[0] == "nonpersistent-buffer-not-rebuilt", str(raised.value)
    # What a forward raises when the meta buffer comes first (swinv2_cr's meta MLP over its coordinates table,
    # TimmWrapper under 4.57 in half precision): torch then calls meta the expected device.
    for left, right in ((torch.ones(3), torch.empty(3, device="meta")), (torch.empty(3, device="meta"), torch.ones(3))):
        with pytest.raises(RuntimeError) as raised:
            left + right
        assert classify(from_exception(raised.value))[0] == "nonpersistent-buffer-not-rebuilt", str(raised.value)


def test_an_open_bound_stays_open_when_the_source_is_perturbed_and_a_faithful_copy_of_it_is_clean():
    """Gemma4's clipped linears hold -inf/inf bounds: noise scaled by their (infinite) mean made them NaN, which no
    load can copy equal, so every cell of those models failed as tensor-mismatch."""
    from compat_tests.source.models import perturb_

    model = torch.nn.Linear(4, 4)
    model.register_buffer("input_min", torch.tensor([-float("inf")]))
    model.register_buffer("bounds", torch.tensor([-float("inf"), 0.5, 2.0, float("inf")]))
    before = copy.deepcopy(model.state_dict())
    perturb_(model)
    state = model.state_dict()
    assert not any(t.isnan().any() for t in state.values())
    assert torch.equal(state["input_min"], before["input_min"])
    assert state["bounds"][0] == -float("inf") and state["bounds"][3] == float("inf")
    assert state["bounds"][1] != 0.5 and not torch.equal(state["weight"], before["weight"])  # finite ones move
    assert diff_state(state, copy.deepcopy(state))["values"] == []


def test_a_constant_tensor_is_told_from_one_that_only_starts_constant():
    """`is_constant` looks at two values first (most drawn tensors differ there) and at all of them otherwise."""
    from compat_tests.source.models import is_constant

    assert is_constant(torch.full((3, 4), 1e-5)) and is_constant(torch.zeros(2, 2).t())
    assert not is_constant(torch.tensor([0.5, 0.5, 0.5, 0.25]))  # equal at the start only
    assert not is_constant(torch.tensor([0.5, 0.25, 0.5])) and not is_constant(torch.tensor([1.0]))
    assert not is_constant(torch.full((3,), float("nan"))) and not is_constant(torch.ones(3, dtype=torch.long))
