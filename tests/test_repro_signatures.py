"""A repro tests what its signature names: for one real failing cell per family of signatures, the repro the
runner recorded runs in a plain Python process and its last line is `timm-compat: reproduced <signature>`.

The cells are failures today's releases really have where there is one (foreign InternViT keys, hf_custom's
unrebuilt buffers, fbnetc_100's BatchNorm eps, TimmWrapper's doubled num_classes, the relpos ViT's unresampled
patch embedding). Where there is none, a real fault is put back into torch: in this process (monkeypatch) while the
runner runs the cell, and in the repro's process by a `sitecustomize.py` on its PYTHONPATH that applies the
same function, so the script itself runs unmodified, as it would against a broken release.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from compat_tests.core.evidence import Evidence
from compat_tests.core.result import Result
from compat_tests.core.scenario import Scenario
from compat_tests.core.versions import installed
from compat_tests.paths import all_paths
from compat_tests.repro.script import FAMILIES, RAISED, expectation, script
from compat_tests.repro.templates import signature_holds
from compat_tests.run.isolation import died
from compat_tests.run.runner import run_scenario
from compat_tests.signatures.catalog import CATALOG, classify
from compat_tests.signatures.detect import AS_RECORDED
from compat_tests.source.models import DEFAULT_SEED, SourceCache

ROOT = Path(__file__).resolve().parents[1]


# --- faults, applied with `patch` = monkeypatch.setattr here and = setattr in the repro's process -------------


def nudge_a_loaded_tensor(patch):
    """torch.load hands back one tensor off by one float step: a loader that changes values it should copy."""
    import torch

    real = torch.load

    def load(*args, **kwargs):
        state = real(*args, **kwargs)
        weight = state.get("blocks.1.mlp.fc1.weight") if isinstance(state, dict) else None
        if weight is not None:
            weight.view(-1)[7] = torch.nextafter(weight.view(-1)[7], torch.tensor(float("inf")))
        return state

    patch(torch, "load", load)


def segfault_on_load(patch):
    """torch.load dies of SIGSEGV, as a native crash in a loader's unpickling does."""
    import os
    import signal

    import torch

    patch(torch, "load", lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGSEGV))


def fault_dir(tmp_path: Path, fault) -> Path:
    """A folder whose sitecustomize.py applies `fault` in every Python process started with it on PYTHONPATH."""
    folder = tmp_path / "fault"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(inspect.getsource(fault) + f"\n\n{fault.__name__}(setattr)\n")
    return folder


def start_repro(folder: Path, text: str, fault=None) -> subprocess.Popen:
    """The repro `text` running as `folder`/repro.py in a plain Python process (with `fault` applied there)."""
    folder.mkdir(exist_ok=True)
    file = folder / "repro.py"
    file.write_text(text)
    # Only HF_HUB_OFFLINE from outside: the script must silence progress bars and logs itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")
           and k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    env["HF_HUB_OFFLINE"] = "1"
    (folder / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(folder / "tmp")  # finish() checks the repro left nothing there
    if fault is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(fault_dir(folder, fault)), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, str(file)], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=300)
    # A repro writes models (gigabytes for a big one) into the temp dir: whatever happened, it removes them.
    left = list((Path(proc.args[1]).parent / "tmp").iterdir())
    assert not left, f"the repro left {left} in the temp dir\n{stdout[-2000:]}{stderr[-2000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def run_repro(folder: Path, text: str, fault=None) -> subprocess.CompletedProcess:
    return finish(start_repro(folder, text, fault))


def failing_cell(model: str, path: str, override: str, signature: str) -> Result:
    """The runner's result for a cell today's releases fail with `signature` (skipped where they no longer do)."""
    found = [o for o in all_paths()[path].overrides(model) if o.name == override]
    result = run_scenario(Scenario(model, path, found[0]), SourceCache())
    if result.status != "failed":
        pytest.skip(f"{result.id} is {result.status} under these releases: the failure this repro replays is gone")
    assert result.signature == signature, result.message
    return result


def assert_reproduced(proc: subprocess.CompletedProcess, signature: str) -> None:
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1] == f"timm-compat: reproduced {signature}", proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 1
    assert lines[-2].startswith("timm-compat: seen: ")


# --- one real failing cell per family ---------------------------------------------------------------------------


def test_keys_a_foreign_layout_no_converter_maps(tmp_path):
    result = failing_cell("test_vit", "foreign", "internvit", "key-layout-mismatch")
    proc = run_repro(tmp_path, result.repro)
    assert_reproduced(proc, "key-layout-mismatch")
    assert "encoder.layers.{i}. -> blocks.{i}." in proc.stdout  # the rename it names, as the signature's message


def test_values_a_loader_that_changes_one_tensor(tmp_path, monkeypatch):
    nudge_a_loaded_tensor(monkeypatch.setattr)
    result = failing_cell("test_vit2", "state_dict", "base", "tensor-mismatch")
    monkeypatch.undo()
    # Beside it, the same script where the fault is absent (a fixed release): it must load faithfully, and say so.
    faulty, clean = (start_repro(tmp_path / "faulty", result.repro, fault=nudge_a_loaded_tensor),
                     start_repro(tmp_path / "clean", result.repro))
    proc, clean = finish(faulty), finish(clean)
    assert_reproduced(proc, "tensor-mismatch")
    assert "blocks.1.mlp.fc1.weight" in proc.stdout.splitlines()[-2]
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert "OK: loaded faithfully" in clean.stdout
    assert clean.stdout.strip().splitlines()[-1].startswith("timm-compat: NOT reproduced: tensor-mismatch: ")


def test_buffers_a_wrapper_loaded_on_the_meta_device(tmp_path):
    # transformers 5 builds a PreTrainedModel on meta: the relative position indices are never computed.
    result = failing_cell("test_vit_relpos", "hf_custom", "base", "nonpersistent-buffer-not-rebuilt")
    proc = run_repro(tmp_path, result.repro)
    assert_reproduced(proc, "nonpersistent-buffer-not-rebuilt")
    assert "relative_position_index" in proc.stdout.splitlines()[-2]
    assert "Loading weights" not in proc.stderr and "Writing model shards" not in proc.stderr  # no progress bars


def test_outputs_a_model_built_with_other_layer_settings(tmp_path):
    # timm builds fbnetc_100 with TF's BatchNorm eps under pretrained=True.
    result = failing_cell("fbnetc_100", "pretrained_file", "base", "module-config-differs")
    proc = run_repro(tmp_path, result.repro)
    assert_reproduced(proc, "module-config-differs")
    assert "eps=0.001" in proc.stdout.splitlines()[-2]


def test_raised_an_argument_passed_twice(tmp_path):
    # timm 1.0.31's save_for_hf writes num_classes into model_args; TimmWrapper passes it as well.
    result = failing_cell("test_vit2", "hf_auto", "base", "kwarg-conflict")
    proc = run_repro(tmp_path, result.repro)
    assert_reproduced(proc, "kwarg-conflict")
    assert "got multiple values for keyword argument 'num_classes'" in proc.stdout.splitlines()[-2]


def test_adapted_a_patch_embedding_left_at_the_checkpoint_size(tmp_path):
    # vision_transformer_relpos's checkpoint filter does not resample the patch embedding (vision_transformer's does).
    result = failing_cell("test_vit_relpos", "pretrained_file", "patch_size_32", "patch-resample-skipped")
    proc = run_repro(tmp_path, result.repro)
    assert_reproduced(proc, "patch-resample-skipped")
    assert "patch_embed.proj.weight" in proc.stdout.splitlines()[-2]


def test_process_a_cell_that_kills_its_process(tmp_path, vit_ls):
    # The cell dies in a worker of its own, recorded as the matrix's isolation records it.
    scenario = Scenario("test_vit2", "state_dict")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fault_dir(tmp_path, segfault_on_load)), str(ROOT)]))
    cell = subprocess.run([sys.executable, "-c", "from compat_tests.core.scenario import Scenario\n"
                           "from compat_tests.run.runner import run_scenario\n"
                           "from compat_tests.source.models import SourceCache\n"
                           "run_scenario(Scenario('test_vit2', 'state_dict'), SourceCache())"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert cell.returncode == -signal.SIGSEGV, cell.stderr[-2000:]
    result = died(Result.for_scenario(scenario, "failed", ""), returncode=cell.returncode, output_tail=cell.stderr)
    assert result.signature == "crash"
    spec = {"name": "test_vit2", "kwargs": {}, "seed": DEFAULT_SEED, "source_kwargs": {}}
    text = script(result.id, all_paths()["state_dict"], spec, vit_ls.input_size, installed(), signature="crash")
    proc = run_repro(tmp_path, text, fault=segfault_on_load)
    assert_reproduced(proc, "crash")
    assert f"killed by signal {signal.SIGSEGV.value}" in proc.stdout


# --- what every repro of a failure carries ----------------------------------------------------------------------


def test_every_signature_in_the_catalog_has_a_family_its_verdict_checks():
    checked = set(re.findall(r'family == "(\w+)"', inspect.getsource(signature_holds)))
    assert [s.name for s in CATALOG if s.family not in checked] == []
    assert [s.name for s in CATALOG if s.family == "raised" and not s.raises and not s.name.startswith("export-")] == []
    assert expectation("exception:IndexError") == {"signature": "exception:IndexError", "family": "raised",
                                                   "type": "IndexError", "pattern": ""}


# An exception each raised-family detector names, with the `extra` its path's judge records.
RAISED_EXAMPLES = {
    "kwarg-conflict": ("hf_auto", "TypeError", "f() got multiple values for keyword argument 'num_classes'", {}),
    "file-given-to-npz-loader": ("pretrained_file", "KeyError", "'embedding/kernel is not a file in the archive'",
                                 {"raised_in_custom_load": "timm/models/vision_transformer.py:566 in load_pretrained"}),
    "hub-access-on-local-load": ("pretrained_file", "LocalEntryNotFoundError",
                                 "Cannot find the requested files in the local cache; offline mode is enabled.", {}),
    "shared-tensors-refused": ("safetensors", "RuntimeError", "Some tensors share memory, this will lead to "
                               "duplicate memory on disk: [{'a.weight', 'b.weight'}]", {}),
    "missing-attribute-after-unpickle": ("legacy", "AttributeError", "'Attention' object has no attribute 'gate'",
                                         {"kind": "pickle", "stage": "forward"}),
    "class-moved-or-renamed": ("legacy", "AttributeError", "Can't get attribute 'Old' on <module 'timm.layers'>",
                               {"kind": "pickle", "stage": "load"}),
    "none-module-called": ("reparam", "TypeError", "'NoneType' object is not callable", {}),
    "input-dtype-not-cast": ("checkpoint_dtype", "RuntimeError",
                             "Input type (float) and bias type (c10::BFloat16) should be the same", {}),
    "pooling-head-unsupported": ("hf_auto", "NotImplementedError", "MobileNetV5Encoder does not support "
                                 "classification use cases.", {}),
    "meta-build-needs-values": ("hf_auto", "NotImplementedError", "aten::_unique2: attempted to run this operator "
                                "with Meta tensors, but there was no fake impl or Meta kernel registered.",
                                {"raised_building": "timm/models/regnet.py:134 in generate_regnet"}),
    # A buffers-family signature a raise can show as well: swinv2_cr's meta MLP over a coordinates table that
    # TimmWrapper (transformers 4.51-4.57) left on meta, in a half-precision load's forward.
    "nonpersistent-buffer-not-rebuilt": ("checkpoint_dtype", "RuntimeError",
                                         "Tensor on device cpu is not on the expected device meta!", {}),
    "legacy-artifact-tampered": ("legacy", "RuntimeError", "legacy artifact sha256 mismatch: model.pth",
                                 {"stage": "verify"}),
    "old-pickle-forward-broken": ("cross_version", "TypeError", "forward() takes 2 positional arguments",
                                  {"kind": "pickle", "stage": "forward", "written_by": ["timm1.0.3"]}),
    "old-config-rejected": ("cross_version", "TypeError", "__init__() got an unexpected keyword argument 'x'",
                            {"kind": "hub", "stage": "config", "written_by": ["timm1.0.3"]}),
    "old-checkpoint-filter-raised": ("cross_version", "KeyError", "'reg_token'",
                                     {"kind": "state_dict", "stage": "load", "written_by": ["timm1.0.3"]}),
    "old-file-load-raised": ("cross_version", "ValueError", "config.json format 0 is no longer supported",
                             {"kind": "hub", "stage": "load", "written_by": ["timm1.0.3"]}),
}
# Where a catch-all of one path was raised (the filter's frame), which its detector reads.
WHERE = {"old-checkpoint-filter-raised": "timm/models/vision_transformer.py:1 in checkpoint_filter_fn",
         "pooling-head-unsupported": "timm/models/mobilenetv5.py:669 in forward_head"}


@pytest.mark.parametrize("name", sorted(RAISED))
def test_a_raised_failure_is_told_by_what_its_detector_reads(name):
    path, kind, message, extra = RAISED_EXAMPLES[name]
    evidence = Evidence(exception={"type": kind, "message": message, "where": WHERE.get(name, "")}, extra=extra)
    assert classify(evidence, path)[0] == name
    want_type, pattern = RAISED[name]
    assert want_type in (None, AS_RECORDED, kind) and re.search(pattern, message)
    if want_type == AS_RECORDED:  # the repro checks the type the cell recorded
        assert expectation(name, kind)["type"] == kind


def test_a_buffer_left_on_meta_is_reproduced_by_the_raise_it_causes():
    """Where the model raises on a buffer a loader left without data, before any buffer could be compared, the
    repro holds by that raise, as the detector does; any other stop is not the failure."""
    expected = expectation("nonpersistent-buffer-not-rebuilt")
    for message in ("Cannot copy out of meta tensor; no data!", "Tensor on device cpu is not on the expected device "
                    "meta!", "Tensor on device meta is not on the expected device cpu!"):
        holds, seen = signature_holds(expected, {"error": RuntimeError(message)})
        assert holds and "left on the meta device" in seen, message
    assert not signature_holds(expected, {"error": RuntimeError("mat1 and mat2 shapes cannot be multiplied")})[0]
    assert signature_holds(expected, {"buffers": ["a.index"]})[0]
    assert not signature_holds(expected, {"buffers": []})[0]


def test_every_family_verdict_runs_on_what_its_script_defines():
    """The verdict is pasted into the script by source: each function it calls must be pasted too."""
    spec = {"name": "test_vit2", "kwargs": {}, "seed": 0, "source_kwargs": {}}
    for family, names in {**FAMILIES, "any": ("unclassified",)}.items():
        text = script("test_vit2-state_dict-base", all_paths()["state_dict"], spec, (3, 160, 160), {},
                      signature=names[0])
        assert "compat_tests" not in text
        # Settings that timm and transformers read once, at import, come first.
        first_import = min(text.index("import timm"), text.index("import torch"))
        for setting in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
            assert text.index(f"os.environ[\"{setting}\"] = ") < first_import, (family, setting)
        defs = [node for node in ast.parse(text).body if isinstance(node, (ast.FunctionDef, ast.Import))]
        namespace: dict = {}
        exec(compile(ast.Module(body=defs, type_ignores=[]), "repro.py", "exec"), namespace)
        for name in names:
            found = {"error": OSError("disk full"), "process": {"returncode": 0, "seconds": 1.0}}
            holds, seen = namespace["signature_holds"](expectation(name), found)
            assert (holds, bool(seen)) == (name == "unclassified", True), (name, seen)
