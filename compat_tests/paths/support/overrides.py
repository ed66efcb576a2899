"""The override axis: what a user may ask of a pretrained checkpoint (another head, channel count, image
size, patch size, dynamic size), the facts of a model that rule an override out, and timm's own word where
the facts do not say (a build on the meta device). Shared by every path that loads with overrides."""

from __future__ import annotations

import os
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import torch

from ...core.evidence import said
from ...core.scenario import BASE, Override
from ...source.meta import meta_model, probe_on_meta


@cache
def _probe(name: str, kwargs: tuple[tuple[str, Any], ...]) -> str | None:
    """Why the architecture rejects these kwargs (built by `probe_on_meta`: nothing allocated where the
    constructor allows it), or None."""
    try:
        probe_on_meta(name, **dict(kwargs))
    except Exception as e:  # whatever timm raises is the architecture saying no
        return said(e)
    return None


# Where the processes of one run leave each other the facts they built (`share_facts`), or None.
SHARED_FACTS_DIR = "facts"  # in the run's side folder
_SHARED: Path | None = None


def share_facts(folder: Path | None) -> None:
    """Let this process read the facts another process of the run built, and leave it its own. Every xdist worker
    collects the same cells and so asks the same facts: the structural tier's collection built the 206 models of
    ViT modules once in each worker, to tell a ViT, a quarter of its startup."""
    global _SHARED
    _SHARED = folder


def _shared_file(name: str) -> Path | None:
    return _SHARED / f"{name}.pickle" if _SHARED is not None else None


@cache
def model_facts(name: str) -> dict[str, Any]:
    """What the override axis needs to know of a model, from one meta build. Kept for the whole run (a few
    values per model), unlike the build: collection asks them, and so does the cell when it runs, after collection
    has moved on to other models. Under `share_facts`, what another process of the run built is read instead."""
    shared = _shared_file(name)
    if shared is not None:
        try:
            # Written by this run's own processes (below), so unpickling it trusts nothing from outside.
            return pickle.loads(shared.read_bytes())
        except Exception:  # not written yet, or half gone: build it
            pass
    facts = _facts_of(meta_model(name))
    if shared is not None:
        try:
            shared.parent.mkdir(parents=True, exist_ok=True)
            partial = shared.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(pickle.dumps(facts))
            partial.replace(shared)  # a reader never sees half of it
        except Exception:  # a convenience for the other workers, never a reason to fail collection
            pass
    return facts


def _facts_of(model: torch.nn.Module) -> dict[str, Any]:
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    patch = getattr(getattr(getattr(model, "patch_embed", None), "proj", None), "kernel_size", None)
    return {
        "num_classes": getattr(model, "num_classes", None),
        "classifier": cfg.get("classifier"),
        "first_conv": cfg.get("first_conv"),
        "side": int((cfg.get("input_size") or (3, 224, 224))[-1]),
        "patch": int(patch[0]) if patch and patch[0] == patch[1] else None,
        "pos_embed": getattr(model, "pos_embed", None) is not None,
        "type": type(model),
    }


def override_axis(name: str) -> list[tuple[Override, str | None]]:
    """Every override of the axis for a model, with the reason it cannot apply that the model's facts
    alone give (no head, no position embedding...), or None. One meta-device build per model, no probing:
    this runs at collection for every selected model."""
    f = model_facts(name)
    step = f["patch"] or 32
    small, large = max(step, f["side"] * 2 // 3 // step * step), f["side"] * 4 // 3 // step * step
    no_head = None if f["classifier"] else "the model has no classifier in its pretrained config"
    other = 10 if f["num_classes"] != 10 else 7
    no_conv = None if f["first_conv"] else "the pretrained config names no first_conv to adapt"
    no_pos = None if f["pos_embed"] else "the model has no absolute position embedding to resample"
    cells: list[tuple[Override, str | None]] = [
        (Override.of(f"num_classes_{other}", num_classes=other), no_head),
        (Override.of("num_classes_0", num_classes=0),
         no_head or ("the model already has num_classes=0" if f["num_classes"] == 0 else None)),
        (Override.of("in_chans_1", in_chans=1), no_conv),
        (Override.of("in_chans_4", in_chans=4), no_conv),
        (Override.of(f"img_size_{small}", img_size=small), no_pos),
        (Override.of(f"img_size_{large}", img_size=large), no_pos),
    ]
    # A 1x1 "patch" (hybrid ViTs embed backbone features) has no half to resample to.
    for patch in ((f["patch"] // 2, f["patch"] * 2) if f["patch"] and f["patch"] > 1 else ()):
        reason = None if f["side"] % patch == 0 else f"image side {f['side']} is not a multiple of patch {patch}"
        cells.append((Override.of(f"patch_size_{patch}", patch_size=patch), reason))
    if not f["patch"]:
        cells.append((Override.of("patch_size_x2"), "not a ViT-style model (no square patch_embed.proj)"))
    elif f["patch"] == 1:
        cells.append((Override.of("patch_size_x2"), "a 1x1 patch embedding of backbone features: nothing to resample"))
    cells.append((Override.of("dynamic_img_size", dynamic_img_size=True), no_pos))
    return cells


def axis_overrides(name: str) -> list[Override]:
    """BASE and every candidate of the axis, for `LoadingPath.overrides`: cheap, so collecting ~45 models
    stays fast; whether each applies is `override_reason`'s question, asked when the cell runs."""
    try:
        return [BASE] + [o for o, _ in override_axis(name)]
    except Exception:  # a model timm cannot build: its base cell reports why
        return [BASE]


@cache
def _fact_reasons(name: str) -> dict[str, str | None]:
    return {o.name: reason for o, reason in override_axis(name)}


def override_reason(name: str, override: Override) -> str | None:
    """Why the architecture does not accept this override (a fact of the model, else what timm raises when
    the model is built with it on the meta device), or None. For `LoadingPath.applies`; cached."""
    if override == BASE:
        return None  # the plain load: no fact of the model can rule it out, and none need be built
    if override.name in _fact_reasons(name):
        reason = _fact_reasons(name)[override.name]
        if reason:
            return reason
    kwargs = override.as_dict()
    if "img_size" in kwargs or "patch_size" in kwargs:
        # timm builds such a model but its forward asserts: the architecture refuses it, no load is at fault.
        facts = model_facts(name)
        side, patch = kwargs.get("img_size", facts["side"]), kwargs.get("patch_size", facts["patch"])
        if isinstance(side, int) and patch and side % patch and not kwargs.get("dynamic_img_pad"):
            return f"image side {side} is not a multiple of patch {patch}"
    return _probe(name, override.kwargs) if override.kwargs else None


def candidate_overrides(name: str) -> list[tuple[Override, str | None]]:
    """Every override of the axis with its full not-applicable reason (probing each on the meta device)."""
    return [(o, override_reason(name, o)) for o, _ in override_axis(name)]


def applicable_overrides(name: str) -> list[Override]:
    """BASE plus every override the architecture accepts (probes each: for explore and tests, not collection)."""
    try:
        return [BASE] + [o for o, reason in candidate_overrides(name) if reason is None]
    except Exception:  # a model timm cannot build: its base cell reports why
        return [BASE]


def skipped_overrides(name: str) -> dict[str, str]:
    return {o.name: reason for o, reason in candidate_overrides(name) if reason is not None}
