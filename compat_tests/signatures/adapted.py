"""Detectors of what an adapted load gets wrong (a resample, a resize, an input-conv adaptation or a head
reset skipped). They read the shapes, values and `extra` that `judge.adapted.judge_adapted` records, and the
size mismatches a strict load raised when no judge ran."""

from __future__ import annotations

from ..core.evidence import Evidence


def _touched(ev: Evidence, reason: str, suffix: str) -> str | None:
    for key, want, got in ev.shape_mismatches:
        # a kernel off only in its input channels is the stem's adaptation, not a patch resample
        if key.endswith(suffix) and (reason != "patch" or list(want[-2:]) != list(got[-2:])):
            if ev.exception:  # a raised size mismatch lists (checkpoint shape, model shape)
                return f"{key}: the model needs {got}, the checkpoint gave {want} (load raised)"
            return f"{key}: the model needs {want}, the load gave {got}"
    adapted = ev.extra.get("adapted", {})
    for key, diff in ev.value_mismatches:
        if key.endswith(suffix) and reason in adapted.get(key, ""):
            return f"{key} has the right shape but not the resampled values (max abs diff {diff:.3g})"
    return None


def patch_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "patch", "patch_embed.proj.weight")


def pos_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "pos", "pos_embed")


def rel_pos_skipped(ev: Evidence) -> str | None:
    return _touched(ev, "rel_pos", "relative_position_bias_table")


def _raised_mismatches(ev: Evidence, ndim: int, dim: int) -> list[tuple[str, list[int], list[int]]]:
    """Size mismatches a strict load raised (checkpoint shape, model shape) that differ in `dim` only: when the
    load raises, no judge ran, so the shapes are all there is to tell which step was skipped."""
    if not ev.exception:
        return []
    return [(k, src, dst) for k, src, dst in ev.shape_mismatches
            if len(src) == len(dst) == ndim and [i for i in range(ndim) if src[i] != dst[i]] == [dim]]


def conv_not_adapted(ev: Evidence) -> str | None:
    for key, src, dst in _raised_mismatches(ev, 4, 1):  # a conv kernel off in its input channels only
        return f"{key}: the checkpoint's kernel takes {src[1]} channels, the model's {dst[1]} (load raised)"
    adapted = ev.extra.get("adapted", {})
    keys = [k for k, r in adapted.items() if "in_chans" in r]
    for key, want, got in ev.shape_mismatches:
        if key in keys:
            return f"{key}: the model needs {want}, the load gave {got}"
    for key, diff in ev.value_mismatches:
        if key in keys:
            return f"{key} differs from adapt_input_conv of the source (max abs diff {diff:.3g})"
    return None


def classifier_not_reset(ev: Evidence) -> str | None:
    raised = _raised_mismatches(ev, 2, 0) + _raised_mismatches(ev, 1, 0)
    if any(k.endswith(".weight") and len(src) == 2 for k, src, _ in raised):  # a linear layer off in its outputs
        return ", ".join(f"{k}: checkpoint {src}, model {dst}" for k, src, dst in raised) + \
            " (the source head reached a model with another class count; load raised)"
    if ev.extra.get("classifier_kept"):
        return f"{', '.join(ev.extra['classifier_kept'])} still hold the source's head"
    out, wanted = ev.output, ev.extra.get("override", {}).get("num_classes")
    if out and wanted is not None and out["shape"] != out["expected_shape"]:
        return f"num_classes={wanted} asked, the model outputs {out['shape']} (expected {out['expected_shape']})"
    return None
