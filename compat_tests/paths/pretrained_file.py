"""timm's real pretrained loader, offline: `create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=...), **override)`, which runs the model's checkpoint_filter_fn,
adapt_input_conv and the classifier reset, over the override axis of `compat_tests.adapted`.

Every candidate override is a cell; one the architecture refuses is skipped at run time with the reason
(`applies`), so collection never builds a model per override."""

from ..adapted import SIGNATURES, adapted_repro_prepare, axis_overrides, judge_adapted, override_reason
from ..expected import adapted_state
from ..renames import KEY_LAYOUT_MISMATCH
from .base import LoadingPath

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
    helpers=(adapted_state,),
    overrides=axis_overrides,
    applies=override_reason,
    # The checkpoint is the plain model's; the override applies only when loading it.
    source_kwargs=lambda override: {},
    judge=judge_adapted,
    signatures=(*SIGNATURES, KEY_LAYOUT_MISMATCH),
    repro_prepare=adapted_repro_prepare(),
)
