"""timm's real pretrained loader, offline: `create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=...), **override)`, which runs the model's checkpoint_filter_fn,
adapt_input_conv and the classifier reset, over the override axis of `support/overrides.py`.

Every candidate override is a cell; one the architecture refuses is skipped at run time with the reason
(`applies`), so collection never builds a model per override."""

from ..judge.adapted import ADAPTED
from .base import LoadingPath
from .support.overrides import axis_overrides, override_reason

ORDER = 80


def pretrained_file_roundtrip(model, workdir, spec):
    import os

    import timm
    import torch

    file = os.path.join(workdir, "checkpoint.pth")
    torch.save(model.state_dict(), file)
    loaded = timm.create_model(spec["name"], pretrained=True, pretrained_cfg_overlay=dict(file=file), **spec["kwargs"])
    return {"model": loaded.eval(), "kwargs": spec["kwargs"]}


PATH = LoadingPath(
    name="pretrained_file",
    summary="torch.save(state_dict) -> timm.create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))",
    roundtrip=pretrained_file_roundtrip,
    structural=True,
    overrides=axis_overrides,
    applies=override_reason,
    # The checkpoint is the plain model's; the override applies only when loading it.
    source_kwargs=lambda override: {},
    check=ADAPTED,
    loads_into_build=True,
)
