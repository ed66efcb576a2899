"""timm.utils.reparameterize_model: the fused (deployment) model must compute what the unfused one does.

Only models with something to fuse get a cell: any submodule with `fuse`, `reparameterize` or
`switch_to_deploy`, found in the live code (judge/reparameterizable.py). The reference is the
unfused source's output; the tolerance is relative to its scale (REPARAM_RTOL in judge/reparam.py, where
the choice is measured and justified). A forward that calls a
submodule the fusion set to None fails on the first fused forward as `none-module-called`, naming
the attribute path.
"""

from __future__ import annotations

from ..core.scenario import BASE, Override
from ..judge.reparam import REPARAM
from ..judge.reparameterizable import is_reparameterizable
from .base import LoadingPath

ORDER = 100


def reparam_roundtrip(model, workdir, spec):
    from timm.utils import reparameterize_model

    # inplace=False (the default) deep-copies: the unfused source stays the reference.
    fused = reparameterize_model(model.eval())
    return {"model": fused.eval()}


def reparam_overrides(model_name: str) -> list[Override]:
    # None (cannot be built) keeps the cell: the create_model cell names that failure, this one errors.
    return [] if is_reparameterizable(model_name) is False else [BASE]


PATH = LoadingPath(
    name="reparam",
    summary="timm.utils.reparameterize_model(model) -> fused model, outputs vs the unfused model",
    roundtrip=reparam_roundtrip,
    overrides=reparam_overrides,
    check=REPARAM,
)
