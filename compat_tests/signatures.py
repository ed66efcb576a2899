"""Failure signatures as data: a stable name, how it is recognised in the evidence, and what it means.

Each signature's `detect` reads only an `Evidence`, so a recorded report can be re-classified later.
The registry is ordered: the first, most specific, match names the failure.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .evidence import Evidence

if TYPE_CHECKING:
    from .results import Result

# Prefixes that wrappers add to a timm model's keys (DDP, transformers' wrapper, torch.compile, trainers).
KNOWN_PREFIXES = ("module.", "timm_model.", "_orig_mod.", "model.", "vision_tower.", "visual.trunk.")
# transformers' legacy key renames (<= 4.48): any key containing gamma/beta.
LEGACY_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))


@dataclass(frozen=True)
class Signature:
    name: str
    explains: str  # one line: what went wrong
    fix: str  # one line: where to look or what to do
    detect: Callable[[Evidence], str | None]  # a short detail when the evidence matches, else None
    # A tool's known limit (an exporter that cannot handle an architecture), not a loading failure: the
    # runner records such cells as skipped, keeping signature, message, evidence and repro.
    limitation: bool = False
    # Seen only in tensor values or outputs, so a structural (meta-device) cell can never show it.
    needs_values: bool = False


def _some(keys: list[str], n: int = 3) -> str:
    head = ", ".join(keys[:n])
    return head + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _exception_matching(pattern: str, type_name: str | None = None) -> Callable[[Evidence], re.Match | None]:
    compiled = re.compile(pattern)

    def match(ev: Evidence) -> re.Match | None:
        if not ev.exception or (type_name and ev.exception["type"] != type_name):
            return None
        return compiled.search(ev.exception["message"])

    return match


_MULTIPLE = r"got multiple values for (?:keyword )?argument '(\w+)'"
_multiple_values = _exception_matching(_MULTIPLE, "TypeError")

# Where a loader is known to build a model with `f(..., arg=<own value>, **<mapping>)`, and what fills that
# mapping. Used only when the evidence lacks `extra["kwarg_sources"]` (reports from before it was recorded).
KWARG_CALL_SITES: tuple[tuple[str, str, str], ...] = (
    ("timm_wrapper/modeling_timm_wrapper.py", "transformers TimmWrapper's own code",
     "config.json field `model_args` (written by timm's save_for_hf)"),
)


def _statement(filename: str, lineno: int, limit: int = 6) -> str:
    """The source of the (possibly multi-line) call starting at `lineno`, joined on one line."""
    lines = []
    for n in range(lineno, lineno + limit):
        text = linecache.getline(filename, n)
        if not text:
            break
        lines.append(text.strip())
        joined = " ".join(lines)
        if joined.count("(") <= joined.count(")"):
            break
    return " ".join(lines)


def _origin(frame_locals: dict[str, Any], mapping: dict) -> str:
    """Which attribute of a local object holds `mapping`, e.g. `config.model_args` (a saved config's field)."""
    for name, obj in frame_locals.items():
        for attr, value in (getattr(obj, "__dict__", None) or {}).items():
            if value is mapping:
                is_config = type(obj).__name__.endswith("Config") and hasattr(obj, "to_dict")
                return f"{name}.{attr}" + (f" (the saved config.json field `{attr}`)" if is_config else "")
    return ""


def kwarg_sources(error: BaseException) -> dict[str, str] | None:
    """For 'got multiple values for keyword argument X': the call, and where each of the two values came from.

    Reads the raising frame (a duplicate keyword fails at the call site, before the callee runs): the
    explicit `X=...` in the call's source is the loader's own code; a `**mapping` holding X is the other
    source, traced to the object attribute it came from (a config loaded from the saved config.json).
    Meant to be stored in `Evidence.extra["kwarg_sources"]` when the exception is caught.
    """
    m = re.search(_MULTIPLE, str(error))
    if not isinstance(error, TypeError) or not m or error.__traceback__ is None:
        return None
    arg, tb = m.group(1), error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    call = _statement(frame.f_code.co_filename, tb.tb_lineno)
    sources = {"argument": arg, "call": call[:300],
               "where": f"{frame.f_code.co_filename.rsplit('site-packages/', 1)[-1]}:{tb.tb_lineno}"}
    if explicit := re.search(rf"\b{arg}\s*=\s*([^,)]+)", call):
        sources["explicit"] = f"{arg}={explicit.group(1).strip()} in the loader's code"
    for name in re.findall(r"\*\*\s*([A-Za-z_][\w.]*)", call):
        head, *attrs = name.split(".")
        mapping = frame.f_locals.get(head)
        for attr in attrs:
            mapping = getattr(mapping, attr, None)
        if isinstance(mapping, dict) and arg in mapping:
            origin = _origin(frame.f_locals, mapping)
            sources["expanded"] = f"**{name} holding {arg}={mapping[arg]!r}" + (f", from {origin}" if origin else "")
            break
    return sources


def _kwarg_conflict(ev: Evidence) -> str | None:
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


def _crash(ev: Evidence) -> str | None:
    proc = _process(ev)
    if not proc or proc.get("timeout_s") is not None:
        return None
    code = proc.get("returncode")
    how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit status {code}"
    tail = (proc.get("output_tail") or "").strip().splitlines()[-1:] or [""]
    return f"the process running this scenario died ({how}); last output: {tail[0][:200]}"


def _timeout(ev: Evidence) -> str | None:
    proc = _process(ev)
    if proc.get("timeout_s") is None:
        return None
    return f"still running after {proc['timeout_s']:g}s"


def _gamma_renamed(ev: Evidence) -> str | None:
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


def _prefix_mismatch(ev: Evidence) -> str | None:
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


def _shape_mismatch(ev: Evidence) -> str | None:
    if not ev.shape_mismatches:
        return None
    key, want, got = ev.shape_mismatches[0]
    more = f" (+{len(ev.shape_mismatches) - 1} more)" if len(ev.shape_mismatches) > 1 else ""
    return f"{key}: expected {want}, loaded {got}{more}"


def _missing(ev: Evidence) -> str | None:
    return f"{len(ev.missing_keys)} missing: {_some(ev.missing_keys)}" if ev.missing_keys else None


def _unexpected(ev: Evidence) -> str | None:
    return f"{len(ev.unexpected_keys)} unexpected: {_some(ev.unexpected_keys)}" if ev.unexpected_keys else None


def _dtype_changed(ev: Evidence) -> str | None:
    if not ev.dtype_mismatches:
        return None
    key, want, got = ev.dtype_mismatches[0]
    return f"{key}: saved {want}, loaded {got} ({len(ev.dtype_mismatches)} tensors)"


def _buffer_not_rebuilt(ev: Evidence) -> str | None:
    if not ev.buffer_mismatches:
        return None
    return f"{len(ev.buffer_mismatches)} differ, e.g. {_some(ev.buffer_mismatches)}"


def _silent_reinit(ev: Evidence) -> str | None:
    if not ev.at_init or ev.missing_keys:
        return None
    return f"{len(ev.at_init)} tensor(s) still hold their initial value: {_some(ev.at_init)}"


def _tensor_mismatch(ev: Evidence) -> str | None:
    if not ev.value_mismatches:
        return None
    key, diff = max(ev.value_mismatches, key=lambda kv: kv[1])
    return f"{len(ev.value_mismatches)} tensor(s) differ from the source, worst {key} (max abs diff {diff:.3g})"


_shared = _exception_matching(r"tensors share memory|contained shared tensors")


def _shared_tensors(ev: Evidence) -> str | None:
    if not (m := _shared(ev)):
        return None
    assert ev.exception is not None
    names = re.findall(r"'([\w.]+)'", ev.exception["message"][m.end():])
    return f"shared: {_some(sorted(set(names)))}" if names else ev.exception["message"][:160]


_hub_needed = _exception_matching(
    r"cannot find the requested files in the local cache|[Oo]ffline mode is enabled|outgoing traffic has been disabled")


def _hub_access(ev: Evidence) -> str | None:
    if not _hub_needed(ev):
        return None
    assert ev.exception is not None
    return f"{ev.exception['type']} at {ev.exception.get('where') or 'an unknown frame'}"


def _module_config(ev: Evidence) -> str | None:
    found = ev.extra.get("module_differences") or []
    if not found or (ev.output or {}).get("ok", True):
        return None
    name, want, got = found[0]
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{name or '(root)'}: saved {want}, loaded {got}{more}"


def _output_mismatch(ev: Evidence) -> str | None:
    out = ev.output
    if out is None or out.get("ok"):
        return None
    if out["shape"] != out["expected_shape"]:
        return f"output shape {out['shape']}, expected {out['expected_shape']}"
    where = ""
    if first := out.get("first_divergence"):
        where = f"; first diverges at {first['module']} (off by {first['relative']:.2g} of its output)"
    return f"max abs error {out['max_error']:.3g} > tolerance {out['tolerance']:.3g}{where}"


REGISTRY: tuple[Signature, ...] = (
    # The process itself went away: nothing else in the evidence can be trusted, so these come first.
    Signature("crash", "the process running the scenario died (segfault, abort, out of memory)",
              "run the repro script alone; look for a native crash or the OOM killer", _crash),
    Signature("timeout", "the scenario did not finish within its time limit",
              "run the repro script alone; a hang in save/load or a pathologically slow forward", _timeout),
    Signature("hub-access-on-local-load", "loading from a local file still asked the model hub for weights",
              "a nested pretrained download (e.g. a hybrid ViT's backbone built with pretrained=True): "
              "offline users cannot load the file at all", _hub_access),
    Signature("shared-tensors-refused", "the model reuses one tensor under several keys and the writer refuses it",
              "safetensors (and save_pretrained) will not store shared tensors: save with safetensors' save_model, "
              "declare _tied_weights_keys, or stop sharing the module", _shared_tensors),
    Signature("kwarg-conflict", "the loader passed the same argument to the model constructor twice",
              "drop the argument from one source (the saved config's model_args or the loader's own keyword)",
              _kwarg_conflict),
    Signature("layerscale-gamma-renamed", "keys ending in .gamma/.beta were renamed to .weight/.bias on load",
              "transformers' legacy gamma->weight rename (<=4.48): upgrade, or rename the keys back",
              _gamma_renamed),
    Signature("key-prefix-mismatch", "every key differs from the model's by one wrapper prefix",
              "strip or add the prefix before load_state_dict", _prefix_mismatch),
    Signature("shape-mismatch", "a checkpoint tensor has a different shape than the model's",
              "check the model arguments the checkpoint was saved with", _shape_mismatch),
    Signature("missing-keys", "the model has keys the checkpoint lacks", "compare the key sets", _missing),
    Signature("unexpected-keys", "the checkpoint has keys the model lacks", "compare the key sets", _unexpected),
    Signature("dtype-changed", "a loaded tensor's dtype differs from the saved one",
              "check the loader's dtype defaults", _dtype_changed),
    Signature("nonpersistent-buffer-not-rebuilt",
              "buffers the model computes in __init__ (not saved) hold other values after loading",
              "the loader built the model without running its init (meta device); recompute these buffers",
              _buffer_not_rebuilt, needs_values=True),
    Signature("silent-reinit", "the load reported success but tensors kept their fresh initial values",
              "a loader skipped or renamed these keys without reporting them", _silent_reinit, needs_values=True),
    Signature("tensor-mismatch", "loaded tensors differ from the saved ones",
              "a loader transformed values it should have copied", _tensor_mismatch, needs_values=True),
    Signature("module-config-differs", "equal weights, but the loader built layers with other settings",
              "the model is constructed differently on this path (timm builds some models differently when "
              "pretrained=True, e.g. BatchNorm eps); save or pass those arguments with the checkpoint",
              _module_config, needs_values=True),
    Signature("output-mismatch", "weights match but outputs differ from the source model's",
              "non-persistent state or forward code differs between saved and loaded model", _output_mismatch,
              needs_values=True),
)

BY_NAME = {s.name: s for s in REGISTRY}


def needs_values(pattern: str) -> bool:
    """Whether every registered signature matching `pattern` (a baseline entry's glob) is seen only in values."""
    import fnmatch

    matched = [s for s in REGISTRY if fnmatch.fnmatchcase(s.name, pattern)]
    return bool(matched) and all(s.needs_values for s in matched)


def is_limitation(name: str, first: tuple[Signature, ...] = ()) -> bool:
    """Whether `name` is a tool's known limit (Signature.limitation), not a loading failure."""
    return any(s.limitation and s.name == name for s in (*first, *REGISTRY))


def classify(ev: Evidence, first: tuple[Signature, ...] = ()) -> tuple[str, str]:
    """(signature, one-line message) for failing evidence; `first` (a path's own signatures) win."""
    for signature in (*first, *REGISTRY):
        detail = signature.detect(ev)
        if detail:
            return signature.name, f"{signature.explains}: {detail}"
    if ev.exception:
        first_line = (ev.exception["message"].strip().splitlines() or [""])[0][:300]
        where = f" at {ev.exception['where']}" if ev.exception.get("where") else ""
        return f"exception:{ev.exception['type']}", f"{ev.exception['type']}: {first_line}{where}"
    return "unclassified", "the oracle flagged this load but no signature matches the evidence"


def classify_record(result: Result) -> tuple[str, str]:
    """Re-derive a recorded failure's (signature, message) from its evidence with today's registry.

    Uses the path's own signatures when that path exists here; records without evidence (harness errors,
    unknown models) keep what they recorded.
    """
    if not result.evidence or result.status not in ("failed", "xfailed"):
        return result.signature, result.message
    from .paths import all_paths

    path = all_paths().get(result.path)
    return classify(Evidence.from_json(result.evidence), path.signatures if path else ())


def needs_signature(name: str) -> bool:
    """Failures still named only by their exception type: candidates for a new registry entry."""
    return name.startswith("exception:") or name == "unclassified"
