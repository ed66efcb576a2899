"""Every signature in the catalog, fed real evidence from the real libraries (a fault put into a real load),
must name it; and classification re-run on the recorded JSON evidence gives the same name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from compat_tests.core.evidence import Evidence, from_exception, kwarg_sources
from compat_tests.core.result import Result
from compat_tests.judge.oracle import judge
from compat_tests.paths import all_paths, path_order
from compat_tests.run.isolation import died
from compat_tests.signatures.catalog import BY_NAME, CATALOG, classify, classify_record

from .conftest import fresh


def saved(source):
    return {k: v.clone() for k, v in source.model.state_dict().items()}


def loaded_from(source, state, strict=False, model=None, **load_kwargs):
    model = model if model is not None else fresh(source)
    report = model.load_state_dict(state, strict=strict, **load_kwargs)
    return {"model": model.eval(), "missing_keys": report.missing_keys, "unexpected_keys": report.unexpected_keys}


def raised(fn) -> Evidence:
    try:
        fn()
    except Exception as e:
        evidence = from_exception(e)
        if sources := kwarg_sources(e):
            evidence.extra["kwarg_sources"] = sources
        return evidence
    raise AssertionError("the fault did not raise")


# One real fault per signature: name -> function(vit_ls, byob, tmp_path) -> Evidence.
def _kwarg_conflict(vit_ls, byob, tmp_path):
    """A timm hub folder whose config.json model_args holds num_classes, read by transformers' TimmWrapper (which
    passes num_classes itself): the very conflict timm >= 1.0.2x's save_for_hf and TimmWrapper produce together."""
    import timm
    import transformers

    timm.models.save_for_hf(byob.model, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    config.setdefault("model_args", {})["num_classes"] = config.get("num_classes", 1000)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return raised(lambda: transformers.AutoModelForImageClassification.from_pretrained(str(tmp_path)))


def _gamma_renamed(vit_ls, byob, tmp_path):
    state = {k.replace("gamma", "weight"): v for k, v in saved(vit_ls).items()}
    return raised(lambda: fresh(vit_ls).load_state_dict(state, strict=True))


def _prefix(vit_ls, byob, tmp_path):
    state = {"module." + k: v for k, v in saved(byob).items()}  # a DistributedDataParallel checkpoint
    return raised(lambda: fresh(byob).load_state_dict(state, strict=True))


def _shape(vit_ls, byob, tmp_path):
    state = saved(vit_ls)
    state["head.weight"] = state["head.weight"][:5]
    return raised(lambda: fresh(vit_ls).load_state_dict(state, strict=True))


def _missing(vit_ls, byob, tmp_path):
    state = saved(vit_ls)
    del state["blocks.0.attn.qkv.weight"]
    return judge(vit_ls, loaded_from(vit_ls, state))


def _unexpected(vit_ls, byob, tmp_path):
    state = saved(vit_ls)
    state["blocks.0.extra.weight"] = torch.zeros(3)
    return judge(vit_ls, loaded_from(vit_ls, state))


def _dtype(vit_ls, byob, tmp_path):
    """load_state_dict(assign=True) keeps the checkpoint's tensors, dtype included: a half checkpoint stays half."""
    state = saved(byob)
    state["head.fc.weight"] = state["head.fc.weight"].half()
    return judge(byob, loaded_from(byob, state, strict=True, assign=True))


def _buffers(vit_ls, byob, tmp_path):
    """Built on the meta device and materialised empty, as big-model loaders do: weights load, but the
    non-persistent buffers computed in __init__ (relative position indices) are never recomputed."""
    import timm

    from compat_tests.source.models import build_source

    source = build_source("test_vit_relpos")
    with torch.device("meta"):
        model = timm.create_model("test_vit_relpos", pretrained=False)
    model = model.to_empty(device="cpu")
    for _, buf in model.named_buffers():
        buf.fill_(7)  # what uninitialised memory may hold, made deterministic
    return judge(source, loaded_from(source, saved(source), strict=True, model=model))


def _regnet_widths_on_the_default_device():
    """timm 1.0.16-1.0.29's RegNet, put back: its stage widths deduplicated with torch.unique on a tensor made on
    the default device, which a loader's meta-device build (transformers 5) makes meta. Undo with the result."""
    import timm.models.regnet as regnet

    real = regnet.generate_regnet

    def generate_regnet(*args, **kwargs):
        widths, num_stages, groups = real(*args, **kwargs)
        torch.unique(torch.tensor(widths, dtype=torch.float32))
        return widths, num_stages, groups

    regnet.generate_regnet = generate_regnet
    return lambda: setattr(regnet, "generate_regnet", real)


def _silent_reinit(vit_ls, byob, tmp_path):
    state = saved(byob)
    del state["stem.bn.running_var"]
    model = fresh(byob)
    model.load_state_dict(state, strict=False)  # a loader that drops a key and reports nothing
    return judge(byob, {"model": model})


def _tensor(vit_ls, byob, tmp_path):
    state = saved(vit_ls)
    w = state["blocks.1.mlp.fc1.weight"]
    w.view(-1)[7] = torch.nextafter(w.view(-1)[7], torch.tensor(float("inf")))
    return judge(vit_ls, loaded_from(vit_ls, state))


def _output(vit_ls, byob, tmp_path):
    loaded = loaded_from(byob, saved(byob))
    model = loaded["model"]
    loaded["forward"] = lambda x: model(x) * (1 + 1e-3)  # same weights, another forward
    return judge(byob, loaded)


def _crash(vit_ls, byob, tmp_path):
    """A real process killed by SIGSEGV, recorded through the results-side helper."""
    proc = subprocess.run([sys.executable, "-c", "import os, signal; print('loading', flush=True); "
                           "os.kill(os.getpid(), signal.SIGSEGV)"], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGSEGV
    r = died(_result(), returncode=proc.returncode, output_tail=proc.stdout + proc.stderr)
    return Evidence.from_json(r.evidence)


def _timeout(vit_ls, byob, tmp_path):
    try:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    except subprocess.TimeoutExpired as e:
        r = died(_result(), timeout_s=e.timeout, output_tail=str(e.output or ""))
        return Evidence.from_json(r.evidence)
    raise AssertionError("no timeout")


def _hub_access(vit_ls, byob, tmp_path):
    """What a hybrid ViT's constructor does under pretrained=True, even when the user passed a local file:
    build its ResNet backbone with pretrained=True, which asks the hub (offline here, as for such users)."""
    import timm

    with torch.device("meta"):
        return raised(lambda: timm.create_model("resnet26d", pretrained=True, features_only=True))


def _shared_tensors(vit_ls, byob, tmp_path):
    """What timm's CoaT does: one conv module reused by several blocks, so its state_dict holds one tensor
    under several keys, which safetensors' writer refuses."""
    import safetensors.torch

    state = saved(vit_ls)
    state["blocks.1.ls1.gamma"] = state["blocks.0.ls1.gamma"]
    return raised(lambda: safetensors.torch.save_file(state, str(tmp_path / "model.safetensors")))


def _module_config(vit_ls, byob, tmp_path):
    """fbnetc_100's case: timm builds it with another BatchNorm eps under pretrained=True. Here the same
    weights go into a test_vit2 built with another LayerNorm eps."""
    from functools import partial

    import timm

    other = timm.create_model("test_vit2", norm_layer=partial(torch.nn.LayerNorm, eps=1e-1))
    return judge(vit_ls, loaded_from(vit_ls, saved(vit_ls), strict=True, model=other))


def _input_dtype(vit_ls, byob, tmp_path):
    """A half-precision model given a float32 input by a wrapper that does not cast it (transformers 5.0-5.4's
    TimmWrapperModel under dtype="auto")."""
    half = fresh(byob).to(torch.bfloat16)
    return raised(lambda: half(byob.input()))


def _pooling_unsupported(vit_ls, byob, tmp_path):
    """mobilenetv5_300m_enc's MobileNetV5Encoder raises NotImplementedError in forward_head, where transformers'
    TimmWrapperModel (AutoModel, a headless model) pools by default: the same forward_head put on a small model's
    class, saved headless with save_for_hf and called through AutoModel as a user calls it."""
    import timm
    import transformers

    model = timm.create_model(byob.name, num_classes=0)
    timm.models.save_for_hf(model, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    config.get("model_args", {}).pop("num_classes", None)  # the known kwarg-conflict's workaround, as the cell has it
    (tmp_path / "config.json").write_text(json.dumps(config))
    cls, original = type(model), type(model).forward_head

    def forward_head(self, x, pre_logits=False):
        raise NotImplementedError(f"{type(self).__name__} does not support classification use cases.")

    cls.forward_head = forward_head
    try:
        wrapper = transformers.AutoModel.from_pretrained(str(tmp_path)).eval()
        return raised(lambda: wrapper(pixel_values=byob.input()))
    finally:
        cls.forward_head = original


def _result() -> Result:
    return Result(id="test_vit2-state_dict-base", model="test_vit2", path="state_dict", override="base",
                  status="passed")


FAULTS = {
    "crash": _crash,
    "timeout": _timeout,
    "hub-access-on-local-load": _hub_access,
    "shared-tensors-refused": _shared_tensors,
    "kwarg-conflict": _kwarg_conflict,
    "layerscale-gamma-renamed": _gamma_renamed,
    "key-prefix-mismatch": _prefix,
    "shape-mismatch": _shape,
    "missing-keys": _missing,
    "unexpected-keys": _unexpected,
    "dtype-changed": _dtype,
    "nonpersistent-buffer-not-rebuilt": _buffers,
    "silent-reinit": _silent_reinit,
    "tensor-mismatch": _tensor,
    "module-config-differs": _module_config,
    "input-dtype-not-cast": _input_dtype,
    "pooling-head-unsupported": _pooling_unsupported,
    "output-mismatch": _output,
}


# Signatures only a path's own judge can give: the selftest that puts their real fault into a real cell of
# that path. The export signatures are one detector per exporter, so each kind names the exporter it injects.
IN_CELLS = {
    "legacy-artifact-tampered": "test_legacy.test_a_tampered_pickle_is_refused_before_it_is_unpickled",
    "missing-attribute-after-unpickle": "test_legacy.test_direct_aa_read_breaks_pickles_from_before_the_aa_attribute",
    "class-moved-or-renamed": "test_legacy.test_a_class_gone_from_its_module_is_named",
    "legacy-output-mismatch": "test_legacy.test_same_tensors_other_numbers_is_a_legacy_output_mismatch",
    "old-pickle-forward-broken":
        "test_cross_version.test_an_old_pickle_whose_forward_now_fails_otherwise_is_pickle_forward_broken",
    "old-config-rejected": "test_cross_version.test_a_config_field_the_reader_no_longer_accepts_is_config_rejected",
    "old-checkpoint-keys-renamed":
        "test_cross_version.test_a_renamed_submodule_fails_every_architecture_of_its_family_from_every_release",
    "old-checkpoint-left-unfilled":
        "test_cross_version.test_a_layerscale_added_by_default_is_reported_as_keys_added_naming_the_module",
    "old-checkpoint-shape-changed": "test_cross_version.test_a_changed_default_width_is_shape_changed",
    "old-checkpoint-keys-added":
        "test_cross_version.test_a_layerscale_added_by_default_is_reported_as_keys_added_naming_the_module",
    "old-checkpoint-keys-removed": "test_cross_version.test_a_module_removed_from_the_default_build_is_keys_removed",
    "old-checkpoint-filter-raised": "test_cross_version.test_a_filter_assuming_a_new_key_is_filter_raised",
    "old-file-load-raised": "test_cross_version.test_a_reader_that_raises_on_an_old_folder_is_load_raised",
    "none-module-called": "test_reparam.test_norm_left_none_is_named_by_attribute_path",
    "meta-build-needs-values": "test_signatures.test_a_constructor_computing_on_a_loaders_meta_build_is_named",
    "reparam-output-drift": "test_reparam.test_fused_output_drift_is_caught",
    "export-broken-by-reparam": "test_export.test_a_fusion_that_breaks_scripting_is_the_models_bug",
    "export-unsupported": "test_export.test_an_architecture_the_exporter_cannot_handle_is_a_limitation",
    "export-mismatch": "test_export.test_an_export_that_disagrees_with_eager_is_a_mismatch",
    "key-layout-mismatch": "test_foreign.test_internvit_layout_fails_with_the_inferred_renames",
    "patch-resample-skipped": "test_pretrained_file.test_skipped_patch_resample_is_named",
    "pos-embed-resample-skipped": "test_pretrained_file.test_skipped_pos_embed_resample_is_named",
    "rel-pos-table-resize-skipped":
        "test_pretrained_file.test_window_tables_resized_by_the_filter_pass_and_a_skipped_resize_is_named",
    "input-conv-not-adapted": "test_pretrained_file.test_input_conv_left_unadapted_is_named",
    "classifier-not-reset": "test_pretrained_file.test_classifier_kept_across_a_class_count_change_is_named",
    "file-given-to-npz-loader":
        "test_pretrained_file.test_a_file_handed_to_the_models_npz_reader_is_named_and_custom_load_false_gets_past_it",
}


def test_every_catalog_signature_has_a_fault_test():
    """The whole catalog, walked: each name has a real fault here or in a cell of its own path."""
    import importlib
    import inspect

    for signature in CATALOG:
        kind = signature.name.split(":")[0]
        assert (signature.name in FAULTS) != (kind in IN_CELLS), f"add one real fault for {signature.name}"
        if kind in IN_CELLS:
            module, test = IN_CELLS[kind].split(".")
            source = inspect.getsource(getattr(importlib.import_module(f"tests.{module}"), test))
            assert kind in source, f"{IN_CELLS[kind]} does not assert {kind}"
        assert signature.explains and signature.fix, f"{signature.name} needs its explanation and fix"


def test_every_scope_names_a_real_path_and_the_reports_know_their_order():
    known = all_paths()
    assert [p for s in CATALOG for p in s.paths if p not in known] == []
    assert path_order() == tuple(known)


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_real_fault_is_named(name, vit_ls, byob, tmp_path):
    evidence = FAULTS[name](vit_ls, byob, tmp_path)
    assert not evidence.clean
    got, message = classify(evidence)
    assert got == name, message
    # Re-classification runs on the recorded JSON alone (an old report), and reaches the same name.
    recorded = json.loads(json.dumps(evidence.to_json(), default=str))
    assert classify(Evidence.from_json(recorded))[0] == name
    assert BY_NAME[name].explains and BY_NAME[name].fix


def test_kwarg_conflict_names_the_argument_and_where_each_value_came_from(byob, tmp_path):
    evidence = _kwarg_conflict(None, byob, tmp_path)
    _, message = classify(evidence)
    assert "'num_classes'" in message and "modeling_timm_wrapper.py" in message
    assert "num_classes=config.num_labels in the loader's code" in message
    assert "config.json field `model_args`" in message
    # Without the recorded sources (an older report) the known call site still says where each came from.
    evidence.extra.clear()
    _, message = classify(evidence)
    assert "TimmWrapper's own code" in message and "config.json field `model_args`" in message


def test_a_constructor_computing_on_a_loaders_meta_build_is_named():
    """A real hf_custom cell (a PreTrainedModel holding the timm tower, built on meta by from_pretrained) on the RegNet
    of timm 1.0.16-1.0.29: meta-build-needs-values, naming timm's frame, from the record alone too."""
    from compat_tests.core.scenario import Scenario
    from compat_tests.run.runner import run_scenario
    from compat_tests.source.models import SourceCache

    undo = _regnet_widths_on_the_default_device()
    try:
        result = run_scenario(Scenario("regnetx_002", "hf_custom"), SourceCache())
    finally:
        undo()
    assert (result.status, result.signature) == ("failed", "meta-build-needs-values"), result.message
    assert "aten::_unique2 has no meta kernel (raised at timm/models/regnet.py:" in result.message
    assert classify_record(result) == (result.signature, result.message)
    # The same cell on today's RegNet loads.
    assert run_scenario(Scenario("regnetx_002", "hf_custom"), SourceCache()).status == "passed"


def test_a_hub_request_where_timm_cannot_import_the_hub_is_named_as_the_request(monkeypatch):
    """timm <= 1.0.15 beside huggingface_hub >= 1.0 (no HfFolder) cannot import the hub, and a local load's nested
    hub request raises timm's own refusal instead of the hub's offline error: still the request that should not
    have been made."""
    import timm
    from timm.models import _hub

    monkeypatch.setattr(_hub, "_has_hf_hub", False)
    with torch.device("meta"):
        evidence = raised(lambda: timm.create_model("resnet26d", pretrained=True, features_only=True))
    assert "package not installed" in evidence.exception["message"]
    assert classify(evidence, "pretrained_file")[0] == "hub-access-on-local-load"


def test_a_meta_op_failing_outside_a_build_is_not_blamed_on_the_build():
    """The same torch error from a forward (a tensor left on meta, not a constructor) keeps its exception type."""
    evidence = raised(lambda: torch.unique(torch.empty(3, device="meta")))
    assert "raised_building" not in evidence.extra
    assert classify(evidence, "hf_auto")[0] == "exception:NotImplementedError"


def test_where_reads_from_the_package_in_a_release_overlaid_on_the_path(tmp_path, monkeypatch):
    """A release installed with `pip install --target DIR` and put on PYTHONPATH (as bisect and the mid-release runs
    do) is named from its package on, as site-packages' is: baseline messages such as '*at timm/models/_hub.py*'
    must match either way."""
    import importlib

    package = tmp_path / "overlay" / "overlay_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def parse(cfg):\n    return cfg.get('model_args').get('img_size')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "overlay"))
    monkeypatch.delitem(sys.modules, "overlay_probe", raising=False)
    probe = importlib.import_module("overlay_probe")
    evidence = raised(lambda: probe.parse({"model_args": None}))
    assert evidence.exception["where"] == "overlay_probe/__init__.py:2 in parse"


def test_an_unrecognised_exception_keeps_its_type():
    evidence = raised(lambda: {}["no such key"])
    assert classify(evidence)[0] == "exception:KeyError"


def test_the_registry_names_are_stable_and_unique():
    names = [s.name for s in CATALOG]
    assert len(names) == len(set(names))
    assert {"layerscale-gamma-renamed", "key-prefix-mismatch", "silent-reinit", "kwarg-conflict", "dtype-changed",
            "crash", "timeout"} <= set(names)


def test_classify_record_rederives_from_evidence_with_the_paths_own_signatures(vit_ls):
    state = {k.replace("gamma", "weight"): v for k, v in saved(vit_ls).items()}
    evidence = judge(vit_ls, loaded_from(vit_ls, state))
    old = Result(id="test_vit2-state_dict-base", model="test_vit2", path="state_dict", override="base",
                 status="failed", signature="exception:RuntimeError", message="as an older registry named it",
                 evidence=json.loads(json.dumps(evidence.to_json())))
    assert classify_record(old)[0] == "layerscale-gamma-renamed"
    unknown_path = Result(**{**old.__dict__, "path": "a_path_from_elsewhere"})
    assert classify_record(unknown_path)[0] == "layerscale-gamma-renamed"
    harness = Result(id="x-state_dict-base", model="x", path="state_dict", override="base", status="error",
                     signature="unknown-model", message="unknown model 'x'")
    assert classify_record(harness) == ("unknown-model", "unknown model 'x'")


def test_crash_records_the_scenario_as_failed_with_the_output():
    r = died(_result(), returncode=-9, output_tail="Killed")
    assert r.status == "failed" and r.signature == "crash" and "signal 9" in r.message
    assert died(_result(), timeout_s=300).signature == "timeout"
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
