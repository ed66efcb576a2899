"""timm's hub folder: save_for_hf -> create_model('local-dir:...', pretrained=True)."""

from ..versions import missing
from .base import LoadingPath

ORDER = 40
LOCAL_DIR = ("timm", "1.0.16", "create_model('local-dir:...')")


def timm_hub_roundtrip(model, workdir, spec):
    import timm

    timm.models.save_for_hf(model, workdir, model_args=spec["kwargs"] or None)
    loaded = timm.create_model("local-dir:" + workdir, pretrained=True)
    return {"model": loaded.eval()}


PATH = LoadingPath(
    name="timm_hub",
    summary="timm.models.save_for_hf -> timm.create_model('local-dir:' + dir, pretrained=True)",
    roundtrip=timm_hub_roundtrip,
    structural=True,
    requires=lambda: missing(*LOCAL_DIR),
)
