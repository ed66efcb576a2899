"""Baseline: build the model again from its name and seed; it must equal the source and run."""

from ..source.models import perturb_
from .base import LoadingPath

ORDER = 0


def create_model_roundtrip(model, workdir, spec):
    import timm
    import torch

    torch.manual_seed(spec["seed"])
    rebuilt = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    perturb_(rebuilt, spec["seed"])
    return {"model": rebuilt.eval()}


PATH = LoadingPath(
    name="create_model",
    summary="timm.create_model(name) with the same seed, built and run again",
    roundtrip=create_model_roundtrip,
    structural=True,
    structural_load_is_source_build=True,
    helpers=(perturb_,),
)
