"""A fused model saved and reloaded: state_dict into a fused skeleton, and the whole pickled object.

The reference is the fused model itself (not the unfused source: reparam judges the fusion). The
skeleton is a fresh model of the same architecture fused with reparameterize_model, which is how a
deployment loads fused weights; both reloads must have the fused model's keys, bit-equal tensors,
the same non-persistent buffers and outputs within the base oracle's 1e-5.
"""

from __future__ import annotations

from ..judge.reparam import REPARAM_ROUNDTRIP
from .base import LoadingPath
from .reparam import reparam_overrides

ORDER = 101


def fused_save_roundtrip(model, workdir, spec):
    import os

    import timm
    import torch
    from timm.utils import reparameterize_model

    fused = reparameterize_model(model.eval())
    weights = os.path.join(workdir, "fused.pth")
    torch.save(fused.state_dict(), weights)
    skeleton = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"]).eval()
    skeleton = reparameterize_model(skeleton, inplace=True)
    skeleton.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)

    whole = os.path.join(workdir, "fused.pt")
    torch.save(fused, whole)
    pickled = torch.load(whole, map_location="cpu", weights_only=False)
    return {"model": skeleton.eval(), "pickled": pickled.eval(), "fused": fused}


PATH = LoadingPath(
    name="reparam_roundtrip",
    summary="reparameterize_model -> torch.save(state_dict) into a fused skeleton, and torch.save(model)",
    roundtrip=fused_save_roundtrip,
    overrides=reparam_overrides,
    check=REPARAM_ROUNDTRIP,
)
