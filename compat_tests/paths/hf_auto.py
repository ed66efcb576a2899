"""A timm hub folder read by transformers' Auto classes, i.e. TimmWrapper."""

from ..versions import missing
from .base import LoadingPath

ORDER = 50
TIMM_WRAPPER = ("transformers", "4.48", "TimmWrapper")


def hf_auto_roundtrip(model, workdir, spec):
    import timm
    import transformers

    timm.models.save_for_hf(model, workdir, model_args=spec["kwargs"] or None)
    # A headless model (num_classes=0) is a feature extractor: AutoModel, whose pooler_output it returns.
    if getattr(model, "num_classes", 1):
        auto, head = transformers.AutoModelForImageClassification, "logits"
    else:
        auto, head = transformers.AutoModel, "pooler_output"
    wrapper, info = auto.from_pretrained(workdir, output_loading_info=True)
    wrapper.eval()

    def strip(keys):
        return [k.removeprefix("timm_model.") for k in keys]

    return {
        "model": wrapper.timm_model,
        "forward": lambda x: getattr(wrapper(pixel_values=x), head),
        "wrapper": wrapper,
        "missing_keys": strip(info.get("missing_keys", [])),
        "unexpected_keys": strip(info.get("unexpected_keys", [])),
    }


PATH = LoadingPath(
    name="hf_auto",
    summary="save_for_hf -> transformers AutoModelForImageClassification/AutoModel.from_pretrained",
    roundtrip=hf_auto_roundtrip,
    requires=lambda: missing(*TIMM_WRAPPER),
)
