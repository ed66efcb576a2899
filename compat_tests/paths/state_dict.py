"""torch.save(model.state_dict()) -> torch.load(weights_only=True) -> load_state_dict(strict=True)."""

from .base import LoadingPath

ORDER = 10


def state_dict_roundtrip(model, workdir, spec):
    import os

    import timm
    import torch

    file = os.path.join(workdir, "model.pth")
    torch.save(model.state_dict(), file)
    state = torch.load(file, map_location="cpu", weights_only=True)
    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    loaded.load_state_dict(state, strict=True)
    return {"model": loaded.eval()}


PATH = LoadingPath(
    name="state_dict",
    summary="torch.save(state_dict) -> torch.load(weights_only=True) -> load_state_dict(strict=True)",
    roundtrip=state_dict_roundtrip,
    structural=True,
    structural_default=False,
)
