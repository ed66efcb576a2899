"""torch.save(model.state_dict()) -> torch.load(weights_only=True) -> load_state_dict(strict=True)."""

from .base import LoadingPath

ORDER = 10


def strict_load(spec, state):
    """A fresh build of the cell's model holding `state`, loaded strictly (what a user's own loader does)."""
    import timm

    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    loaded.load_state_dict(state, strict=True)
    return {"model": loaded.eval()}


def state_dict_roundtrip(model, workdir, spec):
    import os

    import torch

    file = os.path.join(workdir, "model.pth")
    torch.save(model.state_dict(), file)
    return strict_load(spec, torch.load(file, map_location="cpu", weights_only=True))


PATH = LoadingPath(
    name="state_dict",
    summary="torch.save(state_dict) -> torch.load(weights_only=True) -> load_state_dict(strict=True)",
    roundtrip=state_dict_roundtrip,
    helpers=(strict_load,),
    structural=True,
    structural_default=False,
    loads_into_build=True,
)
