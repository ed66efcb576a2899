"""Back from transformers: TimmWrapper save_pretrained -> timm create_model('local-dir:...')."""

from ..core.versions import missing
from .base import LoadingPath
from .hf_auto import TIMM_WRAPPER, hf_auto_roundtrip, load_timm_wrapper
from .timm_hub import LOCAL_DIR, load_local_dir

ORDER = 60


def hf_to_timm_roundtrip(model, workdir, spec):
    import os

    via_transformers = hf_auto_roundtrip(model, os.path.join(workdir, "from_timm"), spec)
    saved = os.path.join(workdir, "from_transformers")
    via_transformers["wrapper"].save_pretrained(saved)
    return load_local_dir(saved)


PATH = LoadingPath(
    name="hf_to_timm",
    summary="TimmWrapper.from_pretrained -> save_pretrained -> timm.create_model('local-dir:' + dir)",
    roundtrip=hf_to_timm_roundtrip,
    helpers=(load_timm_wrapper, hf_auto_roundtrip, load_local_dir),
    requires=lambda: missing(*TIMM_WRAPPER) or missing(*LOCAL_DIR),
    loads_into_build=True,
)
