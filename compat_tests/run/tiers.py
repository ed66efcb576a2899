"""Curated model lists. The smoke tier holds one or a few architectures of each family whose loading
code has broken before, or is built from the blocks that did."""

from __future__ import annotations

SMOKE_FAMILIES: dict[str, tuple[str, ...]] = {
    # LayerScale `gamma` parameters: transformers' legacy gamma->weight rename.
    "layerscale": (
        "vit_small_patch14_dinov2", "vit_small_patch14_reg4_dinov2", "deit3_small_patch16_224",
        "cait_xxs24_224", "convnext_atto", "convnextv2_atto", "xcit_nano_12_p16_224",
    ),
    # OpenAI/OpenCLIP layouts and patch-embed resampling.
    "clip-vit": ("vit_base_patch32_clip_224", "vit_base_patch16_clip_224"),
    "vit": ("deit_tiny_patch16_224", "eva02_tiny_patch14_224"),
    # Reparameterizable: fused at deployment.
    "reparam": (
        "nextvit_small", "repvgg_a0", "mobileone_s0", "fastvit_t8", "repvit_m1", "levit_128s",
        "efficientvit_m0", "tiny_vit_5m_224", "shvit_s1", "repghostnet_050", "ghostnetv3_050",
    ),
    # Built from ConvNormAct, whose attributes changed between releases.
    "convnormact": ("cs3darknet_focus_s", "cspresnet50", "gernet_s", "regnetx_002", "regnety_002"),
    "efficientnet": ("efficientnet_b0", "mobilenetv3_small_050", "mobilenetv4_conv_small", "mobilenetv2_050"),
    # Attention with relative-position buffers.
    "swin": ("swin_tiny_patch4_window7_224", "swinv2_cr_tiny_ns_224"),
    "cnn": ("resnet18", "poolformer_s12", "efficientformer_l1", "mobilevit_xxs"),
    # timm's tiny test models (mid-2024 on): cheap coverage of many blocks.
    "tiny": (
        "test_vit", "test_vit_relpos", "test_convnext", "test_byobnet", "test_efficientnet", "test_resnet",
        "test_nfnet", "test_maxvit",
    ),
}

SMOKE: tuple[str, ...] = tuple(name for names in SMOKE_FAMILIES.values() for name in names)
# structural: the whole registry on the meta device (keys, shapes, dtypes; no values).
# cross-version: the whole registry's files from every older release (the cross_version path), on the meta device.
TIERS = ("smoke", "full", "structural", "cross-version")
# The paths a tier runs when --paths does not name them (None: every default path).
TIER_PATHS: dict[str, tuple[str, ...]] = {"cross-version": ("cross_version",)}


def family_of(model: str) -> str:
    """The smoke family a model belongs to, else the leading part of its name (`convnext_tiny` -> `convnext`)."""
    for family, names in SMOKE_FAMILIES.items():
        if model in names:
            return family
    return model.split("_")[0]
