"""A user's own PreTrainedModel holding a timm model as a submodule, as VLMs embed a vision tower."""

from ..core.versions import missing
from .base import LoadingPath

ORDER = 70


def vision_tower_classes():
    """The user's config and model classes (made in a function so importing needs no transformers)."""
    import timm
    from transformers import PretrainedConfig, PreTrainedModel

    class VisionTowerConfig(PretrainedConfig):
        model_type = "timm_compat_vision_tower"

        def __init__(self, timm_name="resnet18", timm_kwargs=None, **kwargs):
            self.timm_name = timm_name
            self.timm_kwargs = dict(timm_kwargs or {})
            super().__init__(**kwargs)

    class VisionTower(PreTrainedModel):
        config_class = VisionTowerConfig
        main_input_name = "pixel_values"

        def __init__(self, config):
            super().__init__(config)
            self.vision_tower = timm.create_model(config.timm_name, pretrained=False, **config.timm_kwargs)
            self.post_init()

        def forward(self, pixel_values):
            return self.vision_tower(pixel_values)

    return VisionTowerConfig, VisionTower


def hf_custom_roundtrip(model, workdir, spec):
    VisionTowerConfig, VisionTower = vision_tower_classes()
    tower = VisionTower(VisionTowerConfig(timm_name=spec["name"], timm_kwargs=spec["kwargs"]))
    tower.vision_tower.load_state_dict(model.state_dict())
    tower.save_pretrained(workdir)
    loaded, info = VisionTower.from_pretrained(workdir, output_loading_info=True)
    loaded.eval()

    def strip(keys):
        return [k.removeprefix("vision_tower.") for k in keys]

    return {
        "model": loaded.vision_tower,
        "forward": loaded,
        "missing_keys": strip(info.get("missing_keys", [])),
        "unexpected_keys": strip(info.get("unexpected_keys", [])),
    }


PATH = LoadingPath(
    name="hf_custom",
    summary="custom PreTrainedModel with a timm submodule: save_pretrained -> from_pretrained",
    roundtrip=hf_custom_roundtrip,
    helpers=(vision_tower_classes,),
    requires=lambda: missing("transformers", "4.30", "a PreTrainedModel wrapper"),
    loads_into_build=True,
)
