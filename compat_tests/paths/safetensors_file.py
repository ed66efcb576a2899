"""safetensors.torch.save_file(state_dict) -> load_file -> load_state_dict(strict=True)."""

from ..core.versions import missing
from .base import LoadingPath
from .state_dict import strict_load

ORDER = 20


def safetensors_roundtrip(model, workdir, spec):
    import os

    import safetensors.torch

    file = os.path.join(workdir, "model.safetensors")
    safetensors.torch.save_file(model.state_dict(), file)
    return strict_load(spec, safetensors.torch.load_file(file))


PATH = LoadingPath(
    name="safetensors",
    summary="safetensors save_file(state_dict) -> load_file -> load_state_dict(strict=True)",
    roundtrip=safetensors_roundtrip,
    helpers=(strict_load,),
    requires=lambda: missing("safetensors", "0.3", "the safetensors path"),
    loads_into_build=True,
)
