"""timm's hub folder: save_for_hf -> create_model('local-dir:...', pretrained=True)."""

from ..core.versions import missing
from .base import LoadingPath

ORDER = 40
LOCAL_DIR = ("timm", "1.0.16", "create_model('local-dir:...')")


def load_local_dir(folder):
    """timm's own reader of a hub folder (config.json + weights) on disk."""
    import timm

    return {"model": timm.create_model("local-dir:" + folder, pretrained=True).eval()}


def timm_hub_roundtrip(model, workdir, spec):
    import timm

    timm.models.save_for_hf(model, workdir, model_args=spec["kwargs"] or None)
    return load_local_dir(workdir)


PATH = LoadingPath(
    name="timm_hub",
    summary="timm.models.save_for_hf -> timm.create_model('local-dir:' + dir, pretrained=True)",
    roundtrip=timm_hub_roundtrip,
    helpers=(load_local_dir,),
    structural=True,
    requires=lambda: missing(*LOCAL_DIR),
    loads_into_build=True,
)
