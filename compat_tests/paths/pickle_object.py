"""torch.save(model) -> torch.load(weights_only=False): the whole object, in the same releases."""

from .base import LoadingPath

ORDER = 30


def pickle_roundtrip(model, workdir, spec):
    import os

    import torch

    file = os.path.join(workdir, "model.pt")
    torch.save(model, file)
    loaded = torch.load(file, map_location="cpu", weights_only=False)
    return {"model": loaded.eval()}


PATH = LoadingPath(
    name="pickle",
    summary="torch.save(model) -> torch.load(weights_only=False)",
    roundtrip=pickle_roundtrip,
    structural=True,
)
