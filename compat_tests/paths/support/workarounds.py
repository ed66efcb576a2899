"""Workarounds: the fixes users apply by hand to get past a known failure, so the suite can check what lies
behind it. A known-failures entry names one (`workaround = "<name>"`); when a cell fails with that entry's
signature, the runner runs the same cell again with the workaround applied and judges that load in full.

Each workaround is a standalone function (imports inside, so a repro script can embed it) that patches the
installed libraries the way the user's fix behaves and returns a function that undoes the patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def drop_num_classes_from_model_args():
    """After timm's save_for_hf writes config.json, remove `num_classes` from its `model_args`, as users do by
    hand so that transformers' TimmWrapper (which passes num_classes itself) can build the model."""
    import json
    import os

    import timm.models
    from timm.models import _hub

    real = _hub.save_for_hf

    def save_for_hf(model, save_directory, *args, **kwargs):
        out = real(model, save_directory, *args, **kwargs)
        file = os.path.join(save_directory, "config.json")
        with open(file) as f:
            config = json.load(f)
        (config.get("model_args") or {}).pop("num_classes", None)
        with open(file, "w") as f:
            json.dump(config, f, indent=4)
        return out

    _hub.save_for_hf = timm.models.save_for_hf = save_for_hf

    def undo():
        _hub.save_for_hf = timm.models.save_for_hf = real

    return undo


def hybrid_backbone_without_download():
    """Build the ViT-ResNet26D/50D hybrids' ResNet backbone with pretrained=False, as a user loading a local
    file must (timm builds it with pretrained=pretrained, which asks the hub for ImageNet weights first)."""
    from timm.models import vision_transformer_hybrid as hybrid

    real = {name: getattr(hybrid, name) for name in ("resnet26d", "resnet50d")}

    def without_download(build):
        def backbone(*args, **kwargs):
            return build(*args, **{**kwargs, "pretrained": False})
        return backbone

    for name, build in real.items():
        setattr(hybrid, name, without_download(build))

    def undo():
        for name, build in real.items():
            setattr(hybrid, name, build)

    return undo


def overlay_file_without_custom_load():
    """Add custom_load=False to a pretrained_cfg_overlay that names a file, as users of timm up to 1.0.30 must so
    that a PyTorch checkpoint is read by timm's own loader, not by the model's reader of its original .npz
    weights (timm 1.0.31 defaults to that when the overlay names a file)."""
    import timm

    real = timm.create_model

    def create_model(*args, **kwargs):
        overlay = kwargs.get("pretrained_cfg_overlay")
        if overlay and overlay.get("file") and "custom_load" not in overlay:
            kwargs["pretrained_cfg_overlay"] = {**overlay, "custom_load": False}
        return real(*args, **kwargs)

    timm.create_model = create_model

    def undo():
        timm.create_model = real

    return undo


def rebuild_nonpersistent_buffers_after_load():
    """After from_pretrained, call timm's init_non_persistent_buffers on every module that has one, as
    TimmWrapper's _init_weights does and a user's own PreTrainedModel holding a timm tower must do itself
    (transformers 5 builds the model on meta, so the buffers timm computes in __init__ are left unset)."""
    from transformers import PreTrainedModel

    real = PreTrainedModel.__dict__["from_pretrained"]

    def from_pretrained(cls, *args, **kwargs):
        out = real.__func__(cls, *args, **kwargs)
        model = out[0] if isinstance(out, tuple) else out  # (model, info) with output_loading_info=True
        for module in model.modules():
            if hasattr(module, "init_non_persistent_buffers"):
                module.init_non_persistent_buffers()
        return out

    PreTrainedModel.from_pretrained = classmethod(from_pretrained)

    def undo():
        PreTrainedModel.from_pretrained = real

    return undo


@dataclass(frozen=True)
class Workaround:
    name: str
    summary: str  # one line: the fix a user applies
    apply: Callable[[], Callable[[], None]]  # patches the libraries; returns the undo


WORKAROUNDS: dict[str, Workaround] = {w.name: w for w in (
    Workaround("drop-num-classes-from-model-args",
               "remove num_classes from the saved config.json model_args before TimmWrapper reads it",
               drop_num_classes_from_model_args),
    Workaround("hybrid-backbone-without-download",
               "build the hybrid ViT's ResNet backbone with pretrained=False when loading a local file",
               hybrid_backbone_without_download),
    Workaround("rebuild-nonpersistent-buffers-after-load",
               "after from_pretrained, call timm's init_non_persistent_buffers on every module, as TimmWrapper does",
               rebuild_nonpersistent_buffers_after_load),
    Workaround("overlay-file-without-custom-load",
               "add custom_load=False to pretrained_cfg_overlay with the file, so timm reads it as a torch checkpoint",
               overlay_file_without_custom_load),
)}
