"""`timm.models.load_checkpoint(model, file, filter_fn=<the model module's checkpoint_filter_fn>)`: the
loader training scripts use, into a model built with the override. Only where the architecture's module
has a filter; only the overrides a filter handles (resampling), since load_checkpoint neither resets a
classifier nor adapts an input conv (that is load_pretrained's job, covered by `pretrained_file`)."""

from __future__ import annotations

import importlib
from functools import cache

from ..core.scenario import BASE, Override
from ..judge.adapted import ADAPTED
from .base import LoadingPath
from .support.overrides import axis_overrides, override_reason

ORDER = 82
FILTERED = ("img_size_", "patch_size_", "dynamic_img_size")


@cache
def _has_filter(name: str) -> str | None:
    import timm

    module = importlib.import_module(timm.models.model_entrypoint(name).__module__)
    if callable(getattr(module, "checkpoint_filter_fn", None)):
        return None
    return f"{module.__name__} defines no checkpoint_filter_fn"


def load_checkpoint_overrides(name: str) -> list[Override]:
    return [o for o in axis_overrides(name) if o == BASE or o.name.startswith(FILTERED)]


def load_checkpoint_applies(name: str, override: Override) -> str | None:
    return _has_filter(name) or override_reason(name, override)


def load_checkpoint_roundtrip(model, workdir, spec):
    import importlib
    import os

    import timm
    import torch

    file = os.path.join(workdir, "checkpoint.pth")
    torch.save(model.state_dict(), file)
    filter_fn = importlib.import_module(timm.models.model_entrypoint(spec["name"]).__module__).checkpoint_filter_fn
    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    incompatible = timm.models.load_checkpoint(loaded, file, filter_fn=filter_fn)
    return {"model": loaded.eval(), "kwargs": spec["kwargs"], "filter_fn": filter_fn,
            "missing_keys": list(getattr(incompatible, "missing_keys", []) or []),
            "unexpected_keys": list(getattr(incompatible, "unexpected_keys", []) or [])}


PATH = LoadingPath(
    name="load_checkpoint",
    summary="torch.save(state_dict) -> timm.models.load_checkpoint(model, file, filter_fn=checkpoint_filter_fn)",
    roundtrip=load_checkpoint_roundtrip,
    structural=True,
    structural_default=False,
    overrides=load_checkpoint_overrides,
    applies=load_checkpoint_applies,
    source_kwargs=lambda override: {},  # a plain checkpoint, loaded into the overridden model
    check=ADAPTED,
    loads_into_build=True,
)
