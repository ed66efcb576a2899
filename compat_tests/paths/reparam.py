"""timm.utils.reparameterize_model: the fused (deployment) model must compute what the unfused one does.

Only models with something to fuse get a cell: any submodule with `fuse`, `reparameterize` or
`switch_to_deploy`, found in the live code (compat_tests/reparameterizable.py). The reference is the
unfused source's output; the tolerance is relative to its scale (REPARAM_RTOL in
compat_tests/reparam_checks.py, where the choice is measured and justified). A forward that calls a
submodule the fusion set to None fails on the first fused forward as `none-module-called`, naming
the attribute path.
"""

from __future__ import annotations

from ..reparam_checks import compare_scaled, judge_reparam, repro_prepare
from ..reparam_signatures import REPARAM_SIGNATURES
from ..reparameterizable import is_reparameterizable
from ..scenario import BASE, Override
from .base import LoadingPath

ORDER = 100


def reparam_roundtrip(model, workdir, spec):
    from timm.utils import reparameterize_model

    # inplace=False (the default) deep-copies: the unfused source stays the reference.
    fused = reparameterize_model(model.eval())
    return {"model": fused.eval()}


def reparam_check(source, loaded, x, reference, rtol=1e-5):
    """Repro check: the fused model runs and matches the unfused within rtol x the output's scale."""
    import torch

    with torch.no_grad():
        output = loaded["model"](x)  # a None submodule called as a module raises here
    result = compare_scaled(reference, output, rtol)
    print("fused vs unfused:", result)
    assert result["ok"], "the fused model's outputs drift from the unfused model's"


def reparam_overrides(model_name: str) -> list[Override]:
    # None (cannot be built) keeps the cell: the create_model cell names that failure, this one errors.
    return [] if is_reparameterizable(model_name) is False else [BASE]


PATH = LoadingPath(
    name="reparam",
    summary="timm.utils.reparameterize_model(model) -> fused model, outputs vs the unfused model",
    roundtrip=reparam_roundtrip,
    helpers=(compare_scaled, reparam_check),
    overrides=reparam_overrides,
    judge=judge_reparam,
    repro_prepare=repro_prepare('reparam_check'),
    signatures=REPARAM_SIGNATURES,
)
