"""Foreign checkpoints (OpenCLIP, OpenCLIP under DDP, OpenAI CLIP, OpenCLIP timm trunks, original DINOv2,
InternViT) written by their real writer or documented key map, loaded through timm's pretrained loader
into the matching architecture, with and without patch_size / img_size overrides."""

from __future__ import annotations

from functools import cache
from typing import Any

from ..core.evidence import Evidence
from ..core.scenario import Override
from ..core.versions import missing
from ..judge.adapted import ADAPTED, adapted_repro_prepare, judge_adapted
from ..source.models import SourceModel
from .base import LoadingPath
from .support.foreign_layouts import (
    OPEN_CLIP_CONFIGS,
    TRUNK_EMBED_DIM,
    clip_key_map,
    clip_visual_to_timm,
    foreign_to_timm,
    internvit_key_map,
    rename_keys,
    timm_to_clip_visual,
    with_classifier,
    write_foreign,
)
from .support.overrides import model_facts, override_axis, override_reason

ORDER = 85


@cache
def _vit_modules() -> frozenset[str]:
    """timm model modules that can build a VisionTransformer at all (they hold the class or a subclass)."""
    import sys

    import timm
    from timm.models.vision_transformer import VisionTransformer

    found = set()
    for module_name in timm.list_modules():
        module = sys.modules.get(f"timm.models.{module_name}")
        if module and any(isinstance(v, type) and issubclass(v, VisionTransformer) for v in vars(module).values()):
            found.add(module_name)
    return frozenset(found)


@cache
def _is_vit(name: str) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    if _timm_module(name) not in _vit_modules():
        return False  # no build needed: collection asks this of every selected model
    return issubclass(model_facts(name)["type"], VisionTransformer)


def _timm_module(name: str) -> str | None:
    """The timm.models module that registers `name` (its short name), by timm's public registry API."""
    import timm

    if not timm.is_model(name):
        return None
    return timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1]


@cache
def _open_clip_trunk_modules() -> frozenset[str]:
    """timm modules whose models open_clip ships as `visual.trunk` (read from open_clip's live configs)."""
    try:
        import open_clip
    except ImportError:
        return frozenset()
    names = {(open_clip.get_model_config(m) or {}).get("vision_cfg", {}).get("timm_model_name")
             for m in open_clip.list_models()}
    return frozenset(filter(None, (_timm_module(n.split(".")[0]) for n in names if n)))


def layouts_for(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(layout, the timm kwargs its checkpoint implies) for each foreign layout this architecture has."""
    found: list[tuple[str, dict[str, Any]]] = []
    if name in OPEN_CLIP_CONFIGS:
        width = OPEN_CLIP_CONFIGS[name][2]
        found += [(layout, {"num_classes": width}) for layout in ("openclip", "openclip_ddp", "openai_clip")]
    # OpenCLIP checkpoints with a timm trunk exist only for the families open_clip's own configs use.
    if _timm_module(name) in _open_clip_trunk_modules():
        found.append(("openclip_trunk", {"num_classes": TRUNK_EMBED_DIM}))
    if "dinov2" in name and _is_vit(name):
        found.append(("dinov2_original", {}))
    if _is_vit(name):
        found.append(("internvit", {}))
    return found


def foreign_overrides(name: str) -> list[Override]:
    """Each layout plain, and (ViT-style) with the first patch_size and img_size candidate of the axis.
    No probing here (collection stays cheap): `foreign_applies` asks timm when the cell runs."""
    try:
        layouts = layouts_for(name)
        if not layouts:
            return []
        resizes = [o for o, _ in override_axis(name) if o.name.startswith(("patch_size_", "img_size_")) and o.kwargs]
    except Exception:  # a model timm cannot build: no foreign cells
        return []
    picked = [next((o for o in resizes if o.name.startswith(p)), None) for p in ("patch_size_", "img_size_")]
    cells = []
    for layout, implied in layouts:
        cells.append(Override.of(layout, layout=layout, **implied))
        if layout == "internvit":
            continue  # fails before any resize; one cell says so
        cells += [Override.of(f"{layout}_{o.name}", layout=layout, **implied, **o.as_dict()) for o in picked if o]
    return cells


def first_layout(name: str) -> list[Override]:
    """A default structural run's one foreign cell: the architecture's first layout, not resized."""
    try:
        layouts = layouts_for(name)
    except Exception:  # a model timm cannot build: its create_model cell says why
        return []
    return [Override.of(layout, layout=layout, **implied) for layout, implied in layouts[:1]]


def foreign_applies(name: str, override: Override) -> str | None:
    """The resize's reason from the axis (a fact of the model), else whatever timm raises building the model
    with the override's kwargs (less the layout) on the meta device."""
    kwargs = {k: v for k, v in override.as_dict().items() if k != "layout"}
    for candidate, _ in override_axis(name):
        if candidate.kwargs and all(kwargs.get(k, object()) == v for k, v in candidate.kwargs):
            if reason := override_reason(name, candidate):
                return reason
    return override_reason(name, Override.of(override.name, **kwargs))


def foreign_source_kwargs(override: Override) -> dict[str, Any]:
    # The source has the head width the foreign checkpoint implies; resizes apply only when loading.
    return {k: v for k, v in override.as_dict().items() if k == "num_classes"}


def foreign_roundtrip(model, workdir, spec):
    import os

    import timm
    import torch

    kwargs = dict(spec["kwargs"])
    layout = kwargs.pop("layout")
    file = os.path.join(workdir, f"{layout}.pth")
    torch.save(write_foreign(layout, model, spec["name"], spec["seed"]), file)
    overlay = dict(file=file)
    if "num_classes" in kwargs:
        overlay["num_classes"] = kwargs["num_classes"]  # as timm's own tags for such checkpoints declare
    loaded = timm.create_model(spec["name"], pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    return {"model": loaded.eval(), "kwargs": kwargs, "layout": layout,
            "foreign_state": torch.load(file, map_location="cpu", weights_only=True)}


def judge_foreign(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """The adapted-load oracle, on what the documented key map makes of the foreign checkpoint."""
    classifier = (source.model.pretrained_cfg or {}).get("classifier") or "head"
    expected_source = with_classifier(foreign_to_timm(loaded["layout"], loaded.pop("foreign_state")), classifier)
    evidence = judge_adapted(source, {**loaded, "checkpoint_timm": expected_source})
    evidence.extra["layout"] = loaded["layout"]
    return evidence


# The adapted-load check, on what the documented key map makes of the foreign file (as judge_foreign does).
FOREIGN = ADAPTED.with_judge(
    judge_foreign, clip_key_map, internvit_key_map, rename_keys, timm_to_clip_visual, write_foreign,
    clip_visual_to_timm, foreign_to_timm, with_classifier,
    repro_prepare=adapted_repro_prepare('with_classifier(foreign_to_timm(loaded["layout"], loaded["foreign_state"]), '
                                        '(source.pretrained_cfg or dict()).get("classifier") or "head")'))

PATH = LoadingPath(
    name="foreign",
    summary="a foreign-layout checkpoint (open_clip's own writer / documented key map) -> "
            "timm.create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))",
    roundtrip=foreign_roundtrip,
    structural=True,
    structural_cells=first_layout,
    requires=lambda: missing("open_clip", "2.20", "open_clip's writers"),
    overrides=foreign_overrides,
    applies=foreign_applies,
    source_kwargs=foreign_source_kwargs,
    check=FOREIGN,
    loads_into_build=True,
)
