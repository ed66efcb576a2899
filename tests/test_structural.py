"""The structural tier: the real loading paths on the meta device, judged by keys, shapes and dtypes.

Faults are real bugs put back into timm (monkeypatched), and the structural cell must name them as the
numeric cell does, without a single real tensor.
"""

import subprocess
import sys
import tempfile

import torch
from timm.models import vision_transformer

from compat_tests.core.scenario import BASE, Override, Scenario, parse_id
from compat_tests.run.runner import run_scenario
from compat_tests.source.meta import MetaShapes, meta_limitation
from compat_tests.source.models import SourceCache


def _run(model: str, path: str, override: Override = BASE):
    return run_scenario(Scenario(model, path, override, meta=True), SourceCache())


def test_meta_shapes_builds_what_the_meta_device_builds_and_allocates_nothing():
    import timm

    with torch.device("meta"):
        plain = timm.create_model("test_vit2")
    with MetaShapes():
        fast = timm.create_model("test_vit2")
    assert {k: (v.shape, v.dtype) for k, v in plain.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in fast.state_dict().items()}
    assert all(t.is_meta for t in fast.state_dict().values())
    # An op with a tensor argument still runs its meta kernel, so a size mismatch still raises.
    with MetaShapes():
        a, b = torch.empty(2, 3), torch.empty(4, 3)
        try:
            a.copy_(b)
        except RuntimeError:
            pass
        else:
            raise AssertionError("copy_ across shapes must still fail on meta")


def test_structural_cells_have_their_own_ids_and_pass_on_sound_loads():
    scenario = Scenario("test_vit2", "pretrained_file", meta=True)
    assert scenario.id == "test_vit2-pretrained_file-base@meta"
    assert parse_id(scenario.id).meta and parse_id(scenario.id).path == "pretrained_file"
    for path in ("create_model", "state_dict", "pickle", "timm_hub", "pretrained_file"):
        result = _run("test_vit2", path)
        assert result.status == "passed", (path, result.message)
        assert result.evidence["output"] is None  # nothing ran: no values on meta


def test_a_path_that_needs_tensor_data_is_not_applicable_on_meta():
    result = _run("test_vit2", "safetensors")
    assert result.status == "skipped" and "meta device" in result.message


def test_skipped_patch_resample_is_named_without_real_tensors(monkeypatch):
    monkeypatch.setattr(vision_transformer, "resample_patch_embed", lambda v, *a, **k: v)
    result = _run("test_vit2", "pretrained_file", Override.of("patch_size_8", patch_size=8))
    assert result.status == "failed" and result.signature == "patch-resample-skipped", result.message
    assert "@meta" in result.id and 'with torch.device("meta")' in result.repro


def test_a_filter_that_renames_keys_is_caught_and_its_repro_fails_the_same_way(monkeypatch):
    # A checkpoint_filter_fn that leaves another naming scheme behind (encoder.layers.N vs blocks.N).
    real = vision_transformer.checkpoint_filter_fn

    def renaming(state_dict, model, *args, **kwargs):
        out = real(state_dict, model, *args, **kwargs)
        return {k.replace("blocks.", "encoder.layers."): v for k, v in out.items()}

    monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn", renaming)
    result = _run("test_vit2", "pretrained_file")
    assert result.status == "failed", result.message
    assert result.signature in ("key-layout-mismatch", "key-prefix-mismatch"), result.signature
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        # The repro runs in a fresh interpreter, where the filter is sound again: it must pass there.
        script.write(result.repro)
        script.flush()
        done = subprocess.run([sys.executable, script.name], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "OK: keys, shapes and dtypes survive" in done.stdout, done.stderr[-2000:]


def test_meta_limitations_are_told_apart_from_load_failures():
    assert meta_limitation(RuntimeError("Tensor.item() cannot be called on meta tensors"))
    assert meta_limitation(NotImplementedError("Cannot copy out of meta tensor; no data!"))
    assert meta_limitation(RuntimeError("Error(s) in loading state_dict: Missing key(s)")) is None


def test_structural_ids_survive_xdist_node_ids_and_the_repro_command():
    from compat_tests.run.isolation import scenario_id_from_nodeid
    from compat_tests.tools.cli import _generate_repro

    node = "compat_tests/test_matrix.py::test_scenario[resnet18-state_dict-base@meta@resnet18]"
    assert scenario_id_from_nodeid(node) == "resnet18-state_dict-base@meta"
    assert scenario_id_from_nodeid(node.replace("@meta", "")) == "resnet18-state_dict-base"
    script = _generate_repro("test_vit2-state_dict-base@meta", None)
    assert 'with torch.device("meta")' in script and "diff_structure" in script
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "OK: keys, shapes and dtypes survive" in done.stdout, done.stderr[-2000:]


def test_a_constructor_that_needs_values_is_probed_for_real_not_called_inapplicable(monkeypatch):
    # timm 0.9 computes drop-path rates with .item(), which meta tensors cannot give: put that back.
    import timm

    from compat_tests.paths.support import overrides as adapted

    real = timm.create_model

    def needs_values(name, *args, **kwargs):
        if torch.empty(0).device.type == "meta":
            torch.linspace(0, 0.1, 4)[1].item()
        return real(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", needs_values)
    adapted._probe.cache_clear()
    try:
        assert adapted._probe("test_vit2", (("in_chans", 1),)) is None
        assert "unexpected keyword" in adapted._probe("test_vit2", (("no_such_kwarg", 1),))
    finally:
        adapted._probe.cache_clear()
