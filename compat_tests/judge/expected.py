"""The oracle for adapted loads: what a correct load makes of a checkpoint when the user asks for
another head, channel count, image size or patch size.

Computed here independently of any checkpoint filter, with only timm's documented public helpers
(`resample_patch_embed`, `resample_abs_pos_embed`, `adapt_input_conv`) at their documented defaults, or at the
interpolation settings timm binds to the architecture's filter where it binds any (`resample_settings`), so a
filter that skips a step, uses other settings, or leaves a tensor at init disagrees with it.
"""

from __future__ import annotations

from typing import Any


def adapted_state(source_state, source_model, reference, filter_settings=dict):
    """The state dict a correct adapted load gives, and the keys that are rightly fresh.

    `source_state` is the checkpoint in timm's layout, `source_model` a timm model of the same
    architecture that checkpoint fits (for grid size and config), `reference` a fresh timm model built
    with the override (for the target shapes). Returns (expected, fresh, adapted): `fresh` are the keys a
    correct load leaves as built (`rightly_fresh`: a head dropped for another class count, a first conv
    `adapt_input_conv` cannot adapt; their values are the loader's init, not compared),
    `adapted` maps each transformed key to the reason ("patch", "pos", "rel_pos", "in_chans").
    `filter_settings()` gives the interpolation settings the load's filter was bound to (`resample_settings`),
    asked at the first resample only.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    from timm.layers import resample_abs_pos_embed, resample_patch_embed, resize_rel_pos_bias_table
    from timm.models import adapt_input_conv

    cfg = dict(getattr(source_model, "pretrained_cfg", None) or {})
    target = reference.state_dict()
    fresh_keys = set(rightly_fresh(source_model, reference))
    first_convs = cfg.get("first_conv") or ()
    first_convs = (first_convs,) if isinstance(first_convs, str) else tuple(first_convs)
    conv_keys = {c + ".weight" for c in first_convs}

    expected, fresh, adapted = {}, [], {}
    settings = None
    for key, want in target.items():
        if key in fresh_keys:
            fresh.append(key)  # the loader must keep the model's own (a dropped head, an unadaptable first conv)
            continue
        if key not in source_state:
            expected[key] = None  # nothing in the checkpoint for it: reported as missing by the judge
            continue
        value = source_state[key]
        if key.endswith("patch_embed.proj.weight") and value.ndim == 4 and value.shape[-2:] != want.shape[-2:]:
            settings = filter_settings() if settings is None else settings
            value = resample_patch_embed(value, list(want.shape[-2:]), **{
                k: v for k, v in settings.items() if k in ("interpolation", "antialias")})
            adapted[key] = "patch"
        elif key == "pos_embed" and value.ndim == 3:
            # Hiera keeps a (1, tokens, dim) pos_embed beside a PatchEmbed without grid_size: with no grid to go by,
            # an unchanged shape means nothing to resample, and a changed one is beyond this oracle (raised).
            old_grid = tuple(getattr(getattr(source_model, "patch_embed", None), "grid_size", None) or ())
            new_grid = tuple(getattr(getattr(reference, "patch_embed", None), "grid_size", None) or ())
            if not (old_grid and new_grid) and value.shape[1] != want.shape[1]:
                raise NotImplementedError(f"pos_embed goes from {tuple(value.shape)} to {tuple(want.shape)}, and "
                                          "the model has no patch_embed.grid_size to resample it by")
            if old_grid and new_grid and (value.shape[1] != want.shape[1] or old_grid != new_grid):
                no_class = getattr(reference, "no_embed_class", False)
                prefix = 0 if no_class else getattr(reference, "num_prefix_tokens", 1)
                settings = filter_settings() if settings is None else settings
                value = resample_abs_pos_embed(value, list(new_grid), list(old_grid), num_prefix_tokens=prefix,
                                               **settings)
                adapted[key] = "pos"
        elif key.endswith("relative_position_bias_table") and value.ndim in (2, 3):
            # Swin, BEiT and MaxViT filters resize a window's table to the owning module's window
            # (which patch_size/img_size overrides shrink), and also when that window is not square.
            window = tuple(getattr(reference.get_submodule(key.rsplit(".", 1)[0]), "window_size", ()) or ())
            if len(window) == 2 and (value.shape != want.shape or window[0] != window[1]):
                if value.is_meta:
                    value = value.new_empty(want.shape)  # structural cells: only the shape is judged
                else:
                    value = resize_rel_pos_bias_table(value, new_window_size=window, new_bias_shape=want.shape)
                adapted[key] = "rel_pos"
        if key in conv_keys and value.ndim == 4 and value.shape[1] != want.shape[1]:
            # the channels asked for: a space-to-depth stem's kernel takes several input pixels per channel
            base = int((cfg.get("input_size") or (3,))[0])
            value = adapt_input_conv(want.shape[1] * base // value.shape[1], value)
            adapted[key] = "in_chans" if key not in adapted else adapted[key] + "+in_chans"
        expected[key] = value
    return expected, fresh, adapted


def resample_settings(name, loaded):
    """The interpolation settings the load's checkpoint filter was bound to; {} for the helpers' defaults.

    timm binds some per architecture where it builds the filter it hands `build_model_with_cfg` (FlexiViT and
    RADIO resample bilinear without antialias, RADIO v3-B/H with align_corners): read from the first call that
    would load pretrained weights, which is stopped there, so the model itself is never built. Not a meta build:
    timm 0.9 reads drop-path rates with `.item()`, which meta cannot give. A backbone a hybrid builds first (with
    pretrained=False) is built on meta. A loader handed a filter by its caller (`load_checkpoint`) names it in
    `loaded["filter_fn"]`.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import functools
    import sys

    if "filter_fn" in loaded:
        filter_fn = loaded["filter_fn"]
    else:
        import timm
        import torch
        from timm.models import _builder

        class Stop(Exception):
            pass

        seen = []
        real = _builder.build_model_with_cfg

        def recorder(model_cls, variant, pretrained=False, *args, pretrained_filter_fn=None, **kwargs):
            if not pretrained:
                return real(model_cls, variant, pretrained, *args, pretrained_filter_fn=pretrained_filter_fn,
                            **kwargs)
            seen.append(pretrained_filter_fn)
            raise Stop

        # Each model module holds its own reference, imported from _builder: replace it where it is read.
        holders = [m for k, m in list(sys.modules.items())
                   if k.startswith("timm.") and getattr(m, "build_model_with_cfg", None) is real]
        for module in holders:
            module.build_model_with_cfg = recorder
        try:
            with torch.device("meta"):
                timm.create_model(name, pretrained=True)
        except Exception:  # Stop, or a build that fails before it: then the helpers' defaults stand
            pass
        finally:
            for module in holders:
                module.build_model_with_cfg = real
        filter_fn = seen[0] if seen else None
    bound = filter_fn.keywords if isinstance(filter_fn, functools.partial) else {}
    return {k: bound[k] for k in ("interpolation", "antialias", "align_corners") if k in bound}


def rightly_fresh(source_model, model):
    """The keys a correct load leaves as `model` built them, the checkpoint being `source_model`'s (or of its
    shapes): the pretrained cfg's classifier when the class count changed, since the loader must drop the
    checkpoint's head; and a `first_conv` weight that timm's `adapt_input_conv` cannot adapt to the channels asked
    for (a Linear patch projection; a space-to-depth stem asked for more than one channel): the helper raises
    NotImplementedError, and `load_pretrained` drops the weight and warns that it keeps the layer's random init.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    from timm.models import adapt_input_conv

    cfg = dict(getattr(source_model, "pretrained_cfg", None) or {})

    def names(field):
        value = cfg.get(field) or ()
        return (value,) if isinstance(value, str) else tuple(value)

    fresh = []
    if getattr(model, "num_classes", None) != getattr(source_model, "num_classes", None):
        fresh += [c + s for c in names("classifier") for s in (".weight", ".bias")]
    base = int((cfg.get("input_size") or (3,))[0])
    for conv in names("first_conv"):
        try:
            have, want = source_model.get_submodule(conv).weight, model.get_submodule(conv).weight
        except AttributeError:  # a name the model does not have: its load says so
            continue
        if have.ndim < 2 or have.shape == want.shape:
            continue
        try:
            adapt_input_conv(want.shape[1] * base // have.shape[1], have.detach())  # the channels asked for
        except NotImplementedError:
            fresh.append(conv + ".weight")
    return fresh


def input_size_for(source_input_size: tuple[int, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The input an overridden model takes: the source's, with the override's channels and side."""
    chans, *side = source_input_size
    chans = int(kwargs.get("in_chans", chans))
    if "img_size" in kwargs:
        size = kwargs["img_size"]
        side = [size, size] if isinstance(size, int) else list(size)
    return (chans, *side)
