"""Quick random initialisers (source/quick_init.py): a model built under them has the real build's structure,
constants and computed buffers, and a tensor a loader leaves unfilled still fails a cell under the same name."""

import contextlib

import pytest
import timm
import torch

import compat_tests.run.runner as runner
from compat_tests.core.scenario import Scenario
from compat_tests.paths import all_paths
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache, is_constant, nonpersistent_buffers
from compat_tests.source.quick_init import QuickInit


@pytest.mark.parametrize("name", ["test_vit2", "test_byobnet", "test_efficientnet", "test_convnext"])
def test_a_quick_build_differs_from_a_real_one_only_in_random_draws(name):
    torch.manual_seed(0)
    real = timm.create_model(name)
    quick_init = QuickInit()
    with quick_init:
        quick = timm.create_model(name)
    assert quick_init.drawn > 0
    want, got = real.state_dict(), quick.state_dict()
    assert {k: (v.shape, v.dtype) for k, v in want.items()} == {k: (v.shape, v.dtype) for k, v in got.items()}
    drawn = [k for k, v in want.items() if v.is_floating_point() and not is_constant(v)]
    assert drawn
    for key, value in want.items():
        if key in drawn:
            # Finite values at the initialiser's scale that no seeded build (nor a perturbed source) holds.
            assert torch.isfinite(got[key]).all() and not torch.equal(got[key], value), key
            spread, quick_spread = value.float().std().item(), got[key].float().std().item()
            assert 0.5 * spread <= quick_spread <= 2 * spread, (key, spread, quick_spread)
        else:  # constants (BatchNorm's ones, zero biases, LayerScale's init value) and integers as built
            assert torch.equal(got[key], value), key
    buffers = nonpersistent_buffers(quick)
    for key, value in nonpersistent_buffers(real).items():
        assert torch.equal(buffers[key], value), key


def test_draws_that_mean_something_else_run_as_they_are():
    with QuickInit() as quick_init:
        fixed = torch.nn.init.normal_(torch.empty(64, 64), generator=torch.Generator().manual_seed(3))
        meta = torch.nn.init.trunc_normal_(torch.empty(64, 64, device="meta"), std=0.02)
        x = torch.rand(4096)
        mapped = x.clone().erfinv_()  # an erfinv_ not right after a draw of the same tensor
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            torch.nn.Parameter(torch.empty(64, 64)).normal_()
    assert quick_init.drawn == 0
    assert torch.equal(fixed, torch.nn.init.normal_(torch.empty(64, 64), generator=torch.Generator().manual_seed(3)))
    assert meta.is_meta and torch.equal(mapped, torch.erfinv(x))


def test_the_paths_that_build_only_to_load_opt_in_and_the_seeded_rebuild_does_not():
    paths = all_paths()
    assert paths["create_model"].loads_into_build is False  # its build is the check: the seeded values must be drawn
    loaded_into = ("state_dict", "safetensors", "timm_hub", "pretrained_file", "hf_custom")
    assert all(paths[name].loads_into_build for name in loaded_into)


def _loader_drops(key):
    """A loader bug: `key` silently left out of every load (as a filter that drops it, non-strict)."""
    real = torch.nn.Module.load_state_dict

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        kept = {k: v for k, v in state_dict.items() if k != key}
        real(self, kept, strict=False, **kwargs)
        return torch.nn.modules.module._IncompatibleKeys([], [])

    return load_state_dict


@pytest.mark.parametrize("quick", [True, False], ids=["quick-init", "real-init"])
@pytest.mark.parametrize("key, signature", [
    ("blocks.0.mlp.fc1.weight", "tensor-mismatch"),  # drawn at random: differs from the source
    ("blocks.0.ls1.gamma", "silent-reinit"),  # LayerScale's constant init value, recognised as such
])
def test_a_tensor_the_loader_leaves_unfilled_fails_alike_with_and_without_quick_init(monkeypatch, quick, key,
                                                                                     signature):
    built = []

    class Counting(QuickInit):
        def __enter__(self):
            built.append(self)
            return super().__enter__()

    monkeypatch.setattr(runner, "QuickInit", Counting if quick else contextlib.nullcontext)
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", _loader_drops(key))
    result = run_scenario(Scenario("test_vit2", "state_dict"), SourceCache())
    assert result.status == "failed" and result.signature == signature, result.message
    assert key in result.message
    assert (len(built) == 1 and built[0].drawn > 0) if quick else not built
