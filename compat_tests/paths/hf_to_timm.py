"""Back from transformers: TimmWrapper save_pretrained -> timm create_model('local-dir:...')."""

from ..versions import missing
from .base import LoadingPath
from .hf_auto import TIMM_WRAPPER, hf_auto_roundtrip
from .timm_hub import LOCAL_DIR

ORDER = 60


def hf_to_timm_roundtrip(model, workdir, spec):
    import os

    import timm

    via_transformers = hf_auto_roundtrip(model, os.path.join(workdir, "from_timm"), spec)
    saved = os.path.join(workdir, "from_transformers")
    via_transformers["wrapper"].save_pretrained(saved)
    loaded = timm.create_model("local-dir:" + saved, pretrained=True)
    return {"model": loaded.eval()}


PATH = LoadingPath(
    name="hf_to_timm",
    summary="TimmWrapper.from_pretrained -> save_pretrained -> timm.create_model('local-dir:' + dir)",
    roundtrip=hf_to_timm_roundtrip,
    helpers=(hf_auto_roundtrip,),
    requires=lambda: missing(*TIMM_WRAPPER) or missing(*LOCAL_DIR),
)
