"""A timm hub folder read by transformers' Auto classes, i.e. TimmWrapper."""

from ..core.versions import missing
from .base import LoadingPath

ORDER = 50
TIMM_WRAPPER = ("transformers", "4.48", "TimmWrapper")


def load_timm_wrapper(folder, num_classes=1):
    """transformers' Auto class for a timm folder (TimmWrapper), as the loaded dict every path returns. A headless
    model (num_classes=0) is a feature extractor: AutoModel, whose pooler_output it returns."""
    import transformers

    if num_classes:
        auto, head = transformers.AutoModelForImageClassification, "logits"
    else:
        auto, head = transformers.AutoModel, "pooler_output"
    wrapper, info = auto.from_pretrained(folder, output_loading_info=True)  # the release's default dtype
    wrapper.eval()
    return {
        "model": wrapper.timm_model,
        "forward": lambda x: getattr(wrapper(pixel_values=x), head),
        "wrapper": wrapper,
        "missing_keys": [k.removeprefix("timm_model.") for k in info.get("missing_keys", [])],
        "unexpected_keys": [k.removeprefix("timm_model.") for k in info.get("unexpected_keys", [])],
    }


def hf_auto_roundtrip(model, workdir, spec):
    from timm.models._hub import save_for_hf  # timm.models exports it only from 1.0.16; _hub has it in every release

    save_for_hf(model, workdir, model_args=spec["kwargs"] or None)
    return load_timm_wrapper(workdir, getattr(model, "num_classes", 1))


PATH = LoadingPath(
    name="hf_auto",
    summary="save_for_hf -> transformers AutoModelForImageClassification/AutoModel.from_pretrained",
    roundtrip=hf_auto_roundtrip,
    helpers=(load_timm_wrapper,),
    requires=lambda: missing(*TIMM_WRAPPER),
)
