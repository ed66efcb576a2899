"""Checkpoints in the layouts their original authors publish, written here (never downloaded), and the
documented key maps between each layout and timm's.

OpenCLIP and OpenAI-CLIP checkpoints come from open_clip's own models and `state_dict()`: the timm
source's weights are put into the real open_clip model through `TIMM_TO_CLIP` with `strict=True`, so a
map that missed or invented a name fails there, before timm is asked anything. DINOv2's original
layout and InternViT's have no writer on PyPI; they are written from the key maps below, taken from the
authors' model code (facebookresearch/dinov2 `vision_transformer.py`; OpenGVLab
`modeling_intern_vit.py`), and the DINOv2 map is tested against timm's converter in both directions.

Every function here is standalone (imports inside) so repro scripts can embed it.
"""

from __future__ import annotations

# timm architecture -> the open_clip config of the same tower, its OpenAI-architecture twin, and its
# embedding width (the timm head's num_classes, as in timm's own `.openai` tags). write_foreign repeats
# the names because repro scripts embed it alone.
OPEN_CLIP_CONFIGS = {
    "vit_base_patch16_clip_224": ("ViT-B-16", "ViT-B-16-quickgelu", 512),
    "vit_base_patch32_clip_224": ("ViT-B-32", "ViT-B-32-quickgelu", 512),
    "vit_large_patch14_clip_224": ("ViT-L-14", "ViT-L-14-quickgelu", 768),
}
# The OpenCLIP trunk layout wraps any timm model; its projection width (and so the timm head's).
TRUNK_EMBED_DIM = 64
LAYOUTS = ("openclip", "openclip_ddp", "openai_clip", "openclip_trunk", "dinov2_original", "internvit")


def clip_key_map():
    """timm ViT name fragments -> OpenAI/OpenCLIP visual tower fragments (regex, replacement) pairs."""
    return (
        (r"^blocks\.(\d+)\.norm1\.", r"transformer.resblocks.\1.ln_1."),
        (r"^blocks\.(\d+)\.norm2\.", r"transformer.resblocks.\1.ln_2."),
        (r"^blocks\.(\d+)\.attn\.qkv\.weight$", r"transformer.resblocks.\1.attn.in_proj_weight"),
        (r"^blocks\.(\d+)\.attn\.qkv\.bias$", r"transformer.resblocks.\1.attn.in_proj_bias"),
        (r"^blocks\.(\d+)\.attn\.proj\.", r"transformer.resblocks.\1.attn.out_proj."),
        (r"^blocks\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
        (r"^blocks\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
        (r"^patch_embed\.proj\.", "conv1."),
        (r"^norm_pre\.", "ln_pre."),
        (r"^norm\.", "ln_post."),
    )


def internvit_key_map():
    """timm ViT -> original InternViT names (InternVisionEmbeddings / InternVisionEncoder)."""
    return (
        (r"^cls_token$", "embeddings.class_embedding"),
        (r"^pos_embed$", "embeddings.position_embedding"),
        (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
        (r"^blocks\.(\d+)\.ls(\d)\.gamma$", r"encoder.layers.\1.ls\2"),
        (r"^blocks\.(\d+)\.", r"encoder.layers.\1."),
    )


def rename_keys(state, pairs, reverse=False):
    """Apply the first matching (pattern, replacement) to each key; `reverse` uses the map's inverse,
    which every map here spells out as plain fragments so it can be inverted mechanically."""
    import re

    if reverse:
        def back(pat, repl):
            anchored = "$" if pat.endswith("$") else ""
            pattern = "^" + re.escape(repl).replace(r"\\1", r"(\d+)").replace(r"\\2", r"(\d)") + anchored
            return pattern, pat.strip("^$").replace(r"(\d+)", r"\1").replace(r"(\d)", r"\2").replace("\\.", ".")

        pairs = tuple(back(pat, repl) for pat, repl in pairs)
    out = {}
    for key, value in state.items():
        for pattern, repl in pairs:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key, count=1)
                break
        out[key] = value
    return out


def timm_to_clip_visual(state):
    """A timm CLIP ViT state dict -> open_clip's `visual.*` tower (without the `visual.` prefix)."""
    state = dict(state)
    out = {"class_embedding": state.pop("cls_token").reshape(-1), "positional_embedding": state.pop("pos_embed")[0]}
    if "head.weight" in state:
        out["proj"] = state.pop("head.weight").t().contiguous()
        state.pop("head.bias", None)  # CLIP's projection has no bias
    out.update(rename_keys(state, clip_key_map()))
    return out


def clip_visual_to_timm(state, prefix):
    """The documented inverse: `prefix`-ed OpenAI/OpenCLIP visual keys -> timm; CLIP has no head bias, so
    timm's converter sets it to zeros, and so does this map."""
    import torch

    visual = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    out = {"cls_token": visual.pop("class_embedding")[None, None],
           "pos_embed": visual.pop("positional_embedding")[None]}
    if "proj" in visual:
        out["head.weight"] = visual.pop("proj").t()
        out["head.bias"] = torch.zeros(out["head.weight"].shape[0])
    out.update(rename_keys(visual, clip_key_map(), reverse=True))
    return out


def write_foreign(layout, model, name, seed=0):
    """The checkpoint a foreign writer makes of the timm `model`'s weights, in `layout`."""
    import open_clip
    import timm
    import torch

    configs = {
        "vit_base_patch16_clip_224": ("ViT-B-16", "ViT-B-16-quickgelu"),
        "vit_base_patch32_clip_224": ("ViT-B-32", "ViT-B-32-quickgelu"),
        "vit_large_patch14_clip_224": ("ViT-L-14", "ViT-L-14-quickgelu"),
    }
    source = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 777)
    if layout in ("openclip", "openclip_ddp", "openai_clip"):
        clip = open_clip.create_model(configs[name][layout == "openai_clip"], pretrained=None)
        clip.visual.load_state_dict(timm_to_clip_visual(source), strict=True)  # the map must fit the real writer
        if layout == "openclip_ddp":
            return torch.nn.DataParallel(clip).state_dict()  # the wrapper DDP/DataParallel training saves
        state = clip.state_dict()
        if layout == "openai_clip":
            # OpenAI's released archives carry these three scalars beside the weights.
            state.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77),
                         vocab_size=torch.tensor(49408))
        return state
    if layout == "openclip_trunk":
        classifier = model.pretrained_cfg["classifier"]
        side = model.pretrained_cfg["input_size"][-1]
        clip = open_clip.CLIP(
            embed_dim=model.num_classes,
            vision_cfg=dict(timm_model_name=name, timm_model_pretrained=False, timm_pool="", timm_proj="linear",
                            image_size=side),
            text_cfg=dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1),
        )
        trunk = {k: v for k, v in source.items() if not k.startswith(classifier + ".")}
        clip.visual.trunk.load_state_dict(trunk, strict=True)
        clip.visual.head.proj.weight.data.copy_(source[classifier + ".weight"])
        return clip.state_dict()
    if layout == "dinov2_original":
        dim = source["cls_token"].shape[-1]
        out = {"mask_token": torch.randn(1, dim, generator=gen)}
        if "reg_token" in source:
            # Original DINOv2 keeps a position for the class token; timm folds it into cls_token.
            cls_pos = torch.randn(1, 1, dim, generator=gen) * 0.02
            out["register_tokens"] = source.pop("reg_token")
            out["cls_token"] = source.pop("cls_token") - cls_pos
            out["pos_embed"] = torch.cat([cls_pos, source.pop("pos_embed")], dim=1)
        out.update(source)
        return out
    if layout == "internvit":
        return rename_keys(source, internvit_key_map())
    raise ValueError(f"unknown layout {layout!r}; timm {timm.__version__}")


def foreign_to_timm(layout, state):
    """What a correct converter makes of a foreign checkpoint, by the documented maps (not timm's code).
    Unannotated like every function here: repro scripts embed it without the typing imports."""

    if layout in ("openclip", "openai_clip"):
        return clip_visual_to_timm(state, "visual.")
    if layout == "openclip_ddp":
        return clip_visual_to_timm(state, "module.visual.")
    if layout == "openclip_trunk":
        out = {k[len("visual.trunk."):]: v for k, v in state.items() if k.startswith("visual.trunk.")}
        out["__head__.weight"] = state["visual.head.proj.weight"]  # named by the caller's classifier
        return out
    if layout == "dinov2_original":
        state = {k: v for k, v in state.items() if k != "mask_token"}
        if "register_tokens" in state:
            state["reg_token"] = state.pop("register_tokens")
            state["cls_token"] = state["cls_token"] + state["pos_embed"][:, 0]
            state["pos_embed"] = state["pos_embed"][:, 1:]
        return state
    if layout == "internvit":
        return rename_keys(state, internvit_key_map(), reverse=True)
    raise ValueError(f"unknown layout {layout!r}")


def with_classifier(state, classifier):
    """Name the trunk layout's projection after the model's classifier; OpenCLIP's has no bias (zeros)."""
    import torch

    state = dict(state)
    if "__head__.weight" in state:
        weight = state.pop("__head__.weight")
        state[classifier + ".weight"] = weight
        state[classifier + ".bias"] = torch.zeros(weight.shape[0])
    return state
