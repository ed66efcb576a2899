"""The catalog: every failure name the suite gives, in the one order in which they are tried.

A cell's evidence is named by the first entry, among those scoped to its loading path (or to every path),
whose detector matches: so the most specific come first. Adding a failure name is adding one entry here
(with its detector in the module of its kind) and a real-fault selftest (tests/test_signatures.py walks
this catalog). Nothing here imports torch: the report tools re-classify recorded evidence with it.
"""

from __future__ import annotations

import fnmatch

from ..core.evidence import MULTIPLE_VALUES, Evidence
from ..core.result import Result
from . import adapted, cross_version, deploy, legacy, loads
from .detect import AS_RECORDED, Signature
from .renames import key_layout

ADAPTED_LOADS = ("pretrained_file", "load_checkpoint", "foreign")
# Files written by other releases: the legacy fixtures, and every architecture's snapshots.
OLD_FILES = ("legacy", "cross_version")
CROSS = ("cross_version",)
FUSED = ("reparam", "reparam_roundtrip")
# Paths whose loader (transformers' from_pretrained) builds the timm model itself, on the meta device from 5.0.
# create_model's structural cell builds on plain meta too, which is how the structural tier sees such a break
# for the whole registry.
META_BUILDS = ("hf_auto", "hf_to_timm", "hf_custom", "checkpoint_dtype", "legacy")


def _export_entries(exporter: str) -> tuple[Signature, ...]:
    scope = ("export",)
    return (
        Signature(f"export-broken-by-reparam:{exporter}",
                  f"reparameterization made the model unexportable by {exporter}",
                  "the fuse/reparameterize method left state the exporter cannot handle (e.g. a list "
                  "where a ModuleList was)", deploy.export_broken(exporter), scope, family="raised"),
        Signature(f"export-unsupported:{exporter}",
                  f"{exporter} cannot handle this architecture (an exporter limitation, not a loading bug)",
                  "track it against the exporter; the eager model is correct", deploy.export_unsupported(exporter),
                  scope, limitation=True, family="raised"),
        Signature(f"export-mismatch:{exporter}", f"the {exporter} export runs but disagrees with eager",
                  "the exporter or the model's export-specific code path computes something else",
                  deploy.export_mismatch(exporter), scope, needs_values=True, family="outputs"),
    )


CATALOG: tuple[Signature, ...] = (
    # The process itself went away: nothing else in the evidence can be trusted, so these come first.
    Signature("crash", "the process running the scenario died (segfault, abort, out of memory)",
              "run the repro script alone; look for a native crash or the OOM killer", loads.crash, family="process"),
    Signature("timeout", "the scenario did not finish within its time limit",
              "run the repro script alone; a hang in save/load or a pathologically slow forward", loads.timeout,
              family="process"),
    # Files written by an older release (the legacy path's judge records artifact, kind and stage).
    Signature("legacy-artifact-tampered", "a legacy artifact's sha256 differs from the manifest; it was not loaded",
              "regenerate it with the manifest's command, or restore the committed file", legacy.tampered,
              OLD_FILES, family="raised", raises=(None, legacy.TAMPERED)),
    Signature("missing-attribute-after-unpickle",
              "an object pickled by an older release lacks an attribute today's code reads",
              "read new attributes with getattr(self, name, default), or set them in __setstate__",
              legacy.missing_attribute, OLD_FILES, family="raised", raises=("AttributeError", legacy.NO_ATTRIBUTE)),
    Signature("class-moved-or-renamed", "unpickling cannot find a class or module the older release pickled",
              "keep an alias at the old import path", legacy.class_moved, OLD_FILES,
              family="raised", raises=(None, f"{legacy.CANT_GET}|{legacy.NO_MODULE}")),
    Signature("legacy-output-mismatch",
              "the legacy artifact loads with the producer's exact tensors but computes a different output",
              "forward code or non-persistent state changed between the releases", legacy.legacy_output_mismatch,
              ("legacy",), needs_values=True, family="outputs"),
    # What changed between the release that wrote a file and the one reading it (cross_version's judge records
    # kind, stage, loader, the releases and the pretrained tags reached).
    Signature("old-pickle-forward-broken", "a model pickled by an older release unpickles but its forward fails "
              "under today's code", "today's forward reads state the old object does not have: read it with a "
              "default, or migrate it in __setstate__", cross_version.pickle_forward_broken, CROSS,
              family="raised", raises=(AS_RECORDED, "")),
    Signature("old-config-rejected", "a config.json an older release wrote is rejected by today's loader",
              "keep accepting (and ignoring or mapping) the old field", cross_version.config_rejected, CROSS,
              family="raised", raises=(AS_RECORDED, "")),
    Signature("old-checkpoint-keys-renamed", "keys of an older release's checkpoint were renamed and nothing maps "
              "them back", "teach the model's checkpoint_filter_fn the rename (below)", cross_version.keys_renamed,
              CROSS, family="keys"),
    Signature("old-checkpoint-left-unfilled",
              "an older release's checkpoint loads without an error but leaves tensors unfilled (or drops some)",
              "the loader went non-strict (a dropped classifier) or only logged it: map the old keys in the "
              "checkpoint_filter_fn, and check what load_state_dict returns", cross_version.left_unfilled, CROSS,
              family="keys"),
    Signature("old-checkpoint-shape-changed", "a tensor of an older release's checkpoint has another shape today",
              "the default configuration changed: convert or resample the old tensor in the checkpoint_filter_fn, "
              "or list the change as deliberate", cross_version.shape_changed, CROSS, family="keys"),
    Signature("old-checkpoint-keys-added", "today's model has keys an older release's checkpoint lacks",
              "a module was added to the default build (LayerScale, a norm): default it when absent, or list the "
              "change as deliberate", cross_version.keys_added, CROSS, family="keys"),
    Signature("old-checkpoint-keys-removed", "an older release's checkpoint has keys today's model lacks",
              "a module was removed or renamed: drop or map the old keys in the checkpoint_filter_fn",
              cross_version.keys_removed, CROSS, family="keys"),
    # Fused (deployment) models: a None call explains every later symptom.
    Signature("none-module-called", "forward calls a submodule that reparameterization set to None",
              "the fuse/reparameterize method must leave an nn.Identity (or the forward must skip the None slot)",
              deploy.none_module_called, (*FUSED, "export"), family="raised", raises=("TypeError", deploy.NONE_CALLED)),
    Signature("reparam-output-drift",
              "the fused model's outputs differ from the unfused model's beyond float rounding",
              "a branch, norm or bias was dropped or mis-folded by the fuse/reparameterize method",
              deploy.reparam_drift, FUSED, needs_values=True, family="outputs"),
    *(entry for exporter in deploy.EXPORTERS for entry in _export_entries(exporter)),
    # Checkpoints loaded with a converter and overrides: a layout no converter mapped explains every later
    # symptom (a resample cannot happen to keys that never arrived).
    Signature("key-layout-mismatch",
              "the checkpoint uses another naming scheme than the model and no converter mapped it",
              "add a converter for this layout to the model's checkpoint_filter_fn (the renames below are what "
              "it must do)", key_layout, ADAPTED_LOADS, family="keys"),
    Signature("patch-resample-skipped", "the patch embedding was not resampled to the requested patch size",
              "the checkpoint filter must call resample_patch_embed on every layout it converts",
              adapted.patch_skipped, ADAPTED_LOADS, family="adapted"),
    Signature("pos-embed-resample-skipped", "the position embedding was not resampled to the model's grid",
              "the checkpoint filter must call resample_abs_pos_embed on every layout it converts",
              adapted.pos_skipped, ADAPTED_LOADS, family="adapted"),
    Signature("rel-pos-table-resize-skipped",
              "a window's relative position bias table was not resized to its window",
              "the checkpoint filter must call resize_rel_pos_bias_table for every window an override changed",
              adapted.rel_pos_skipped, ADAPTED_LOADS, family="adapted"),
    Signature("input-conv-not-adapted", "the first conv was not adapted to the requested in_chans",
              "load_pretrained must run adapt_input_conv on the pretrained_cfg first_conv", adapted.conv_not_adapted,
              ADAPTED_LOADS, family="adapted"),
    Signature("classifier-not-reset", "the classifier was kept although num_classes changed",
              "drop the pretrained_cfg classifier keys when num_classes differs", adapted.classifier_not_reset,
              ADAPTED_LOADS, family="adapted"),
    # Any path.
    Signature("file-given-to-npz-loader", "the model's pretrained config has custom_load (weights in their original "
              ".npz format), and timm handed the given PyTorch file to the model's .npz reader",
              "pass custom_load=False in pretrained_cfg_overlay with the file; timm 1.0.31 does that itself when "
              "the overlay names a file", loads.custom_loader_given_file,
              family="raised", raises=(None, loads.NOT_NPZ)),
    Signature("hub-access-on-local-load", "loading from a local file still asked the model hub for weights",
              "a nested pretrained download (e.g. a hybrid ViT's backbone built with pretrained=True): "
              "offline users cannot load the file at all", loads.hub_access,
              family="raised", raises=(None, loads.HUB_NEEDED)),
    Signature("shared-tensors-refused", "the model reuses one tensor under several keys and the writer refuses it",
              "safetensors (and save_pretrained) will not store shared tensors: save with safetensors' save_model, "
              "declare _tied_weights_keys, or stop sharing the module", loads.shared_tensors,
              family="raised", raises=(None, loads.SHARED_TENSORS)),
    Signature("kwarg-conflict", "the loader passed the same argument to the model constructor twice",
              "drop the argument from one source (the saved config's model_args or the loader's own keyword)",
              loads.kwarg_conflict, family="raised", raises=("TypeError", MULTIPLE_VALUES)),
    Signature("layerscale-gamma-renamed", "keys ending in .gamma/.beta were renamed to .weight/.bias on load",
              "transformers' legacy gamma->weight rename (<=4.48): upgrade, or rename the keys back",
              loads.gamma_renamed, family="keys"),
    Signature("key-prefix-mismatch", "every key differs from the model's by one wrapper prefix",
              "strip or add the prefix before load_state_dict", loads.prefix_mismatch, family="keys"),
    Signature("shape-mismatch", "a checkpoint tensor has a different shape than the model's",
              "check the model arguments the checkpoint was saved with", loads.shape_mismatch, family="keys"),
    Signature("missing-keys", "the model has keys the checkpoint lacks", "compare the key sets", loads.missing,
              family="keys"),
    Signature("unexpected-keys", "the checkpoint has keys the model lacks", "compare the key sets", loads.unexpected,
              family="keys"),
    Signature("dtype-changed", "a loaded tensor's dtype differs from the saved one",
              "check the loader's dtype defaults", loads.dtype_changed, family="keys"),
    # After dtype-changed: a loader that changed the dtype against its documentation is the cause then.
    Signature("input-dtype-not-cast", "the loaded model cannot take an ordinary input: its weights are in another "
              "dtype and the loader's model does not cast the input to it",
              "cast the input to the model's dtype in the wrapper's forward (as TimmWrapperForImageClassification "
              "does), or load the weights in float32", loads.input_not_cast,
              family="raised", raises=("RuntimeError", loads.INPUT_DTYPE)),
    Signature("pooling-head-unsupported", "the loader's model pools through forward_head (transformers' "
              "TimmWrapperModel does by default), which this timm model does not implement (an encoder without a head)",
              "load it with do_pooling=False and read last_hidden_state (as Gemma3n does with MobileNetV5), or "
              "give the encoder a forward_head that pools", loads.pooling_unsupported,
              family="raised", raises=("NotImplementedError", "")),
    Signature("meta-build-needs-values", "the loader builds the model on the meta device, and the architecture's "
              "constructor computes with tensor values there", "create the constructor's helper tensors on the CPU "
              "(device='cpu'), as timm 1.0.30 does for RegNet's stage widths", loads.meta_build_needs_values,
              (*META_BUILDS, "create_model"), family="raised", raises=(None, loads.META_NEEDS_VALUES)),
    Signature("nonpersistent-buffer-not-rebuilt",
              "buffers the model computes in __init__ (not saved) hold other values after loading",
              "the loader built the model without running its init (meta device); recompute these buffers",
              loads.buffer_not_rebuilt, needs_values=True, family="buffers", raises=(None, loads.LEFT_ON_META)),
    Signature("silent-reinit", "the load reported success but tensors kept their fresh initial values",
              "a loader skipped or renamed these keys without reporting them", loads.silent_reinit, needs_values=True,
              family="values"),
    Signature("tensor-mismatch", "loaded tensors differ from the saved ones",
              "a loader transformed values it should have copied", loads.tensor_mismatch, needs_values=True,
              family="values"),
    Signature("module-config-differs", "equal weights, but the loader built layers with other settings",
              "the model is constructed differently on this path (timm builds some models differently when "
              "pretrained=True, e.g. BatchNorm eps); save or pass those arguments with the checkpoint",
              loads.module_config, needs_values=True, family="outputs"),
    Signature("output-mismatch", "weights match but outputs differ from the source model's",
              "non-persistent state or forward code differs between saved and loaded model", loads.output_mismatch,
              needs_values=True, family="outputs"),
    # Last on this path: what an older release's file makes today's loaders raise, where nothing above names it.
    Signature("old-checkpoint-filter-raised", "the checkpoint_filter_fn raised on an older release's checkpoint",
              "the filter assumes keys or shapes that older checkpoints do not have", cross_version.filter_raised,
              CROSS, family="raised", raises=(AS_RECORDED, "")),
    Signature("old-file-load-raised", "loading a file an older release wrote raises under today's releases",
              "read the exception and where it was raised", cross_version.load_raised, CROSS,
              family="raised", raises=(AS_RECORDED, "")),
)

BY_NAME = {s.name: s for s in CATALOG}


def scoped(path: str | None) -> tuple[Signature, ...]:
    """The entries a cell of `path` can be named by, in catalog order (an unknown path: the unscoped ones)."""
    return tuple(s for s in CATALOG if s.scoped_to(path))


def needs_values(pattern: str) -> bool:
    """Whether every signature matching `pattern` (a baseline entry's glob) is seen only in values."""
    matched = [s for s in CATALOG if fnmatch.fnmatchcase(s.name, pattern)]
    return bool(matched) and all(s.needs_values for s in matched)


def is_limitation(name: str) -> bool:
    """Whether `name` is a tool's known limit (Signature.limitation), not a loading failure."""
    return name in BY_NAME and BY_NAME[name].limitation


def classify(ev: Evidence, path: str | None = None) -> tuple[str, str]:
    """(signature, one-line message) for failing evidence of a cell of `path`."""
    for signature in scoped(path):
        detail = signature.detect(ev)
        if detail:
            return signature.name, f"{signature.explains}: {detail}"
    if ev.exception:
        first_line = (ev.exception["message"].strip().splitlines() or [""])[0][:300]
        where = f" at {ev.exception['where']}" if ev.exception.get("where") else ""
        return f"exception:{ev.exception['type']}", f"{ev.exception['type']}: {first_line}{where}"
    return "unclassified", "the oracle flagged this load but no signature matches the evidence"


def classify_record(result: Result) -> tuple[str, str]:
    """Re-derive a recorded failure's (signature, message) from its evidence with today's catalog.

    Records without evidence (harness errors, unknown models) keep what they recorded.
    """
    if not result.evidence or result.status not in ("failed", "xfailed"):
        return result.signature, result.message
    return classify(Evidence.from_json(result.evidence), result.path)


def needs_signature(name: str) -> bool:
    """Failures still named only by their exception type: candidates for a new catalog entry."""
    return name.startswith("exception:") or name == "unclassified"
