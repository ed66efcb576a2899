"""safetensors.torch.save_file(state_dict) -> load_file -> load_state_dict(strict=True)."""

from ..versions import missing
from .base import LoadingPath

ORDER = 20


def safetensors_roundtrip(model, workdir, spec):
    import os

    import safetensors.torch
    import timm

    file = os.path.join(workdir, "model.safetensors")
    safetensors.torch.save_file(model.state_dict(), file)
    state = safetensors.torch.load_file(file)
    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    loaded.load_state_dict(state, strict=True)
    return {"model": loaded.eval()}


PATH = LoadingPath(
    name="safetensors",
    summary="safetensors save_file(state_dict) -> load_file -> load_state_dict(strict=True)",
    roundtrip=safetensors_roundtrip,
    requires=lambda: missing("safetensors", "0.3", "the safetensors path"),
)
