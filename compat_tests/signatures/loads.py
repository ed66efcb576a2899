"""Detectors of the failures any loading path can show: the process died, the loader raised, keys or
tensors differ, outputs differ. The catalog (catalog.py) names them and puts them in order."""

from __future__ import annotations

import re
from typing import Any

from ..core.evidence import MULTIPLE_VALUES, Evidence
from .detect import output_detail, raised, some

# Prefixes that wrappers add to a timm model's keys (DDP, transformers' wrapper, torch.compile, trainers).
KNOWN_PREFIXES = ("module.", "timm_model.", "_orig_mod.", "model.", "vision_tower.", "visual.trunk.")
# transformers' legacy key renames (<= 4.48): any key containing gamma/beta.
LEGACY_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))

_multiple_values = raised(MULTIPLE_VALUES, "TypeError")

# Where a loader is known to build a model with `f(..., arg=<own value>, **<mapping>)`, and what fills that
# mapping. Used only when the evidence lacks `extra["kwarg_sources"]` (reports from before it was recorded).
KWARG_CALL_SITES: tuple[tuple[str, str, str], ...] = (
    ("timm_wrapper/modeling_timm_wrapper.py", "transformers TimmWrapper's own code",
     "config.json field `model_args` (written by timm's save_for_hf)"),
)


def kwarg_conflict(ev: Evidence) -> str | None:
    m = _multiple_values(ev)
    if not m:
        return None
    where = ev.exception.get("where", "") if ev.exception else ""
    recorded = ev.extra.get("kwarg_sources") or {}
    site = next((s for s in KWARG_CALL_SITES if s[0] in where), None)
    explicit = recorded.get("explicit") or (f"an explicit {m.group(1)}= in {site[1]}" if site else "")
    expanded = recorded.get("expanded") or (f"a **kwargs mapping filled from the {site[2]}" if site else "")
    if not (explicit or expanded):
        return f"argument {m.group(1)!r} was given twice (raised at {where}); one value is explicit, one from **kwargs"
    return (f"argument {m.group(1)!r} was given twice (at {where}): "
            f"once as {explicit or '?'}, once via {expanded or '?'}")


def _process(ev: Evidence) -> dict[str, Any]:
    return ev.extra.get("process") or {}


def crash(ev: Evidence) -> str | None:
    proc = _process(ev)
    if not proc or proc.get("timeout_s") is not None:
        return None
    code = proc.get("returncode")
    how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit status {code}"
    tail = (proc.get("output_tail") or "").strip().splitlines()[-1:] or [""]
    return f"the process running this scenario died ({how}); last output: {tail[0][:200]}"


def timeout(ev: Evidence) -> str | None:
    proc = _process(ev)
    if proc.get("timeout_s") is None:
        return None
    return f"still running after {proc['timeout_s']:g}s"


def gamma_renamed(ev: Evidence) -> str | None:
    unexpected = set(ev.unexpected_keys)
    # transformers <= 4.48 replaced the substring anywhere in a key: ls1.gamma, but also cait's gamma_1
    # and xcit's gamma1 (-> weight_1, weight1).
    pairs = [
        (k, k.replace(old.strip("."), new.strip(".")))
        for k in ev.missing_keys
        for old, new in LEGACY_RENAMES
        if old.strip(".") in k and k.replace(old.strip("."), new.strip(".")) in unexpected
    ]
    if not pairs:
        return None
    return f"{len(pairs)} key(s) renamed, e.g. {pairs[0][0]} -> {pairs[0][1]}"


# Keys torch fills in itself when a checkpoint lacks them (BatchNorm's counter), so never reports missing.
FILLED_SILENTLY = (".num_batches_tracked",)


def _same_up_to(expected: set[str], got: set[str], expected_cut: bool, got_cut: bool) -> bool:
    """`expected` and `got` are one key set, allowing for keys torch fills silently and for lists the report
    cut at Evidence's MAX_LISTED (then only what both lists show can be compared)."""
    if not expected & got:
        return False
    if not got_cut and not all(k.endswith(FILLED_SILENTLY) for k in expected - got):
        return False
    return expected_cut or all(k.endswith(FILLED_SILENTLY) for k in got - expected)


def prefix_mismatch(ev: Evidence) -> str | None:
    if not ev.missing_keys or not ev.unexpected_keys:
        return None
    missing, unexpected = set(ev.missing_keys), set(ev.unexpected_keys)
    missing_cut = ev.counts.get("missing_keys", 0) > len(ev.missing_keys)
    unexpected_cut = ev.counts.get("unexpected_keys", 0) > len(ev.unexpected_keys)
    for prefix in KNOWN_PREFIXES:
        if _same_up_to({prefix + k for k in missing}, unexpected, missing_cut, unexpected_cut):
            return f"checkpoint keys carry an extra prefix {prefix!r}"
        if _same_up_to({prefix + k for k in unexpected}, missing, unexpected_cut, missing_cut):
            return f"checkpoint keys lack the prefix {prefix!r}"
    return None


def shape_mismatch(ev: Evidence) -> str | None:
    if not ev.shape_mismatches:
        return None
    key, want, got = ev.shape_mismatches[0]
    more = f" (+{len(ev.shape_mismatches) - 1} more)" if len(ev.shape_mismatches) > 1 else ""
    return f"{key}: expected {want}, loaded {got}{more}"


def missing(ev: Evidence) -> str | None:
    return f"{len(ev.missing_keys)} missing: {some(ev.missing_keys)}" if ev.missing_keys else None


def unexpected(ev: Evidence) -> str | None:
    return f"{len(ev.unexpected_keys)} unexpected: {some(ev.unexpected_keys)}" if ev.unexpected_keys else None


def dtype_changed(ev: Evidence) -> str | None:
    if not ev.dtype_mismatches:
        return None
    key, want, got = ev.dtype_mismatches[0]
    return f"{key}: expected {want}, loaded {got} ({len(ev.dtype_mismatches)} tensors)"


# What torch says when a model's own computation meets a tensor a loader left on the meta device (a numeric
# cell never builds on meta, so only a loader can have put it there). Which device torch calls "expected" is the
# first operand's: a meta buffer in front of a CPU weight reads the other way round.
LEFT_ON_META = (r"Cannot copy out of meta tensor|on device meta is not on the expected device"
                r"|is not on the expected device meta")
_left_on_meta = raised(LEFT_ON_META)


# What torch says when an operation needs values a meta tensor does not have: an operator without a meta kernel
# (torch.unique), or reading a value out (.item(), .tolist()).
META_NEEDS_VALUES = r"attempted to run this operator with Meta tensors|cannot be called on meta tensors" \
    r"|aten::_local_scalar_dense"
_meta_needs_values = raised(META_NEEDS_VALUES)


def meta_build_needs_values(ev: Evidence) -> str | None:
    """Only while timm built the model: a numeric cell's harness never builds on meta, so the loader did; a
    structural create_model cell reports what plain meta, as transformers 5 builds, raised there."""
    building = ev.extra.get("raised_building")
    if not building or not _meta_needs_values(ev):
        return None
    assert ev.exception is not None
    message = ev.exception["message"].strip()
    op = re.match(r"(aten::\w+): attempted to run this operator with Meta tensors", message)
    what = f"{op.group(1)} has no meta kernel" if op else (message.splitlines() or [""])[0][:120]
    return f"{what} (raised at {building})"


# What a model's own .npz reader says of a PyTorch checkpoint: numpy's missing-array error up to timm 1.0.28, a
# plain refusal in 1.0.29 and 1.0.30.
NOT_NPZ = r"is not a file in the archive|did not find a supported JAX/Flax parameter layout"
_not_npz = raised(NOT_NPZ)


def custom_loader_given_file(ev: Evidence) -> str | None:
    """Raised inside the model's own `load_pretrained`, which timm calls for a pretrained config with custom_load."""
    inside = ev.extra.get("raised_in_custom_load")
    if not inside or not _not_npz(ev):
        return None
    assert ev.exception is not None
    first = (ev.exception["message"].strip().splitlines() or [""])[0][:160]
    return f"{ev.exception['type']}: {first} (raised in {inside})"


def buffer_not_rebuilt(ev: Evidence) -> str | None:
    if ev.buffer_mismatches:
        return f"{len(ev.buffer_mismatches)} differ, e.g. {some(ev.buffer_mismatches)}"
    if _left_on_meta(ev):
        assert ev.exception is not None
        return f"a computed tensor was left on the meta device (raised at {ev.exception.get('where') or '?'})"
    return None


def silent_reinit(ev: Evidence) -> str | None:
    if ev.missing_keys:
        return None
    if ev.at_init:
        return f"{len(ev.at_init)} tensor(s) still hold their initial value: {some(ev.at_init)}"
    if ev.unwritten:  # a structural cell: no value to compare, but no copy reached them
        return f"{len(ev.unwritten)} tensor(s) never written by the load: {some(ev.unwritten)}"
    return None


def tensor_mismatch(ev: Evidence) -> str | None:
    if not ev.value_mismatches:
        return None
    key, diff = max(ev.value_mismatches, key=lambda kv: kv[1])
    return f"{len(ev.value_mismatches)} tensor(s) differ from the source, worst {key} (max abs diff {diff:.3g})"


SHARED_TENSORS = r"tensors share memory|contained shared tensors"
_shared = raised(SHARED_TENSORS)


def shared_tensors(ev: Evidence) -> str | None:
    if not (m := _shared(ev)):
        return None
    assert ev.exception is not None
    names = re.findall(r"'([\w.]+)'", ev.exception["message"][m.end():])
    return f"shared: {some(sorted(set(names)))}" if names else ev.exception["message"][:160]


# timm's own refusal comes where huggingface_hub cannot be imported (timm <= 1.0.15 beside huggingface_hub 1.x).
HUB_NEEDED = (r"cannot find the requested files in the local cache|[Oo]ffline mode is enabled"
              r"|outgoing traffic has been disabled|Hugging Face hub model specified but package not installed")
_hub_needed = raised(HUB_NEEDED)


def hub_access(ev: Evidence) -> str | None:
    if not _hub_needed(ev):
        return None
    assert ev.exception is not None
    return f"{ev.exception['type']} at {ev.exception.get('where') or 'an unknown frame'}"


def module_config(ev: Evidence) -> str | None:
    found = ev.extra.get("module_differences") or []
    if not found or (ev.output or {}).get("ok", True):
        return None
    name, want, got = found[0]
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{name or '(root)'}: saved {want}, loaded {got}{more}"


def output_mismatch(ev: Evidence) -> str | None:
    return output_detail(ev.output)


def pooling_unsupported(ev: Evidence) -> str | None:
    """The model's own forward_head refuses: TimmWrapperModel pools through it by default (do_pooling), and an
    encoder-only model (MobileNetV5Encoder) raises NotImplementedError there."""
    if not ev.exception or ev.exception["type"] != "NotImplementedError" or \
            not (ev.exception.get("where") or "").endswith(" in forward_head"):
        return None
    return f"{ev.exception['message']} (raised at {ev.exception['where']})"


# What torch says when a layer gets an input of another floating dtype than its weights.
INPUT_DTYPE = (r"Input type \(([\w:.]+)\) and (?:bias|weight) type \(([\w:.]+)\) should be the same"
               r"|must have the same dtype, but got (\w+) and (\w+)")
_input_dtype = raised(INPUT_DTYPE, "RuntimeError")


def input_not_cast(ev: Evidence) -> str | None:
    if not (m := _input_dtype(ev)):
        return None
    got, want = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    assert ev.exception is not None
    return f"a {got} input reached {want} weights (raised at {ev.exception.get('where') or '?'})"
