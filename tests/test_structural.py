"""The structural tier: the real loading paths on the meta device, judged by keys, shapes and dtypes.

Faults are real bugs put back into timm (monkeypatched), and the structural cell must name them as the
numeric cell does, without a single real tensor.
"""

import os
import subprocess
import sys
import tempfile

import pytest
import timm
import torch
from timm.models import vision_transformer

from compat_tests.core.scenario import BASE, Override, Scenario, parse_id
from compat_tests.judge.expected import rightly_fresh
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


def _norm_and_activation_calls():
    """(call, tensors): good and bad calls of every shape rule, on contiguous, channels-last (2d and 3d),
    strided and overlapping (expanded) inputs."""
    F = torch.nn.functional
    nchw = torch.empty(2, 6, 4, 5)
    inputs = {"contiguous": nchw, "channels_last": nchw.to(memory_format=torch.channels_last),
              "channels_last_3d": torch.empty(2, 6, 3, 4, 5).to(memory_format=torch.channels_last_3d),
              "permuted": nchw.permute(0, 2, 3, 1), "sliced": torch.empty(3, 8)[:, :6],
              "expanded": torch.empty(1, 6, 1, 5).expand(2, 6, 4, 5)}
    c6, c5, c3 = torch.empty(6), torch.empty(5), torch.empty(3)
    calls = []
    for name, x in inputs.items():
        last = (x.shape[-1],)
        calls += [
            (f"layer_norm {name}", lambda x=x, n=last: F.layer_norm(x, n, torch.empty(n), torch.empty(n))),
            (f"layer_norm wrong shape {name}", lambda x=x: F.layer_norm(x, (7,))),
            (f"layer_norm wrong weight {name}", lambda x=x, n=last: F.layer_norm(x, n, torch.empty(9))),
            (f"batch_norm {name}", lambda x=x: F.batch_norm(x, torch.empty(x.shape[1]), torch.empty(x.shape[1]))),
            (f"batch_norm training {name}", lambda x=x: F.batch_norm(x, None, None, training=True)),
            (f"batch_norm wrong stats {name}", lambda x=x: F.batch_norm(x, c3, c3)),
            (f"batch_norm wrong weight {name}", lambda x=x: F.batch_norm(x, None, None, c3, None, True)),
            (f"group_norm {name}", lambda x=x: F.group_norm(x, 1, torch.empty(x.shape[1]), torch.empty(x.shape[1]))),
            (f"group_norm groups {name}", lambda x=x: F.group_norm(x, 4)),
            (f"group_norm wrong weight {name}", lambda x=x: F.group_norm(x, 1, c5)),
        ]
        for act in ("gelu", "silu", "relu", "hardswish", "hardsigmoid", "mish", "sigmoid", "tanh", "leaky_relu"):
            calls.append((f"{act} {name}", lambda x=x, a=act: getattr(F, a)(x)))
            if act not in ("gelu", "sigmoid", "tanh"):
                calls.append((f"{act} in place {name}", lambda x=x, a=act: getattr(F, a)(x.clone(), inplace=True)))
        calls += [(f"Tensor.sigmoid {name}", lambda x=x: x.sigmoid()),
                  (f"torch.tanh {name}", lambda x=x: torch.tanh(x))]
    calls += [("batch_norm one value per channel", lambda: F.batch_norm(torch.empty(1, 6), None, None, training=True)),
              ("batch_norm mixed dtypes", lambda: F.batch_norm(nchw, c6.half(), c6.half())),
              ("gelu of integers", lambda: F.gelu(torch.empty(3, dtype=torch.long))),
              ("silu in place on a leaf that requires grad", lambda: F.silu(c6.requires_grad_(), inplace=True))]
    return calls


def test_shape_rules_give_what_the_meta_kernels_give_and_raise_where_they_raise(monkeypatch):
    """MetaShapes answers normalisations and activations without their Python meta kernels: each answer must be
    the kernel's (shape, dtype, strides; in place, the input itself), and each refusal a refusal."""
    from compat_tests.source import meta

    answered = set()

    def counting(func, rule):
        def answer(*args, **kwargs):
            result = rule(*args, **kwargs)
            if result is not NotImplemented:
                answered.add(func.__name__)
            return result
        return answer

    for func, rule in list(meta._SHAPE_RULES.items()):
        monkeypatch.setitem(meta._SHAPE_RULES, func, counting(func, rule))

    def outcome(call):
        try:
            out = call()
        except Exception as e:  # the refusal is what is compared
            return type(e).__name__
        return tuple(out.shape), out.dtype, out.stride()

    with torch.device("meta"):
        real = {name: outcome(call) for name, call in _norm_and_activation_calls()}
    with MetaShapes():
        fast = {name: outcome(call) for name, call in _norm_and_activation_calls()}
    assert fast == real
    assert {"layer_norm", "batch_norm", "group_norm", "gelu", "silu", "hardswish", "sigmoid", "tanh"} <= answered
    assert sum(isinstance(v, str) for v in real.values()) >= 20, real  # the bad calls really are refused
    with MetaShapes():
        x = torch.empty(2, 3)
        assert torch.nn.functional.relu(x, inplace=True) is x


def test_structural_cells_have_their_own_ids_and_pass_on_sound_loads():
    scenario = Scenario("test_vit2", "pretrained_file", meta=True)
    assert scenario.id == "test_vit2-pretrained_file-base@meta"
    assert parse_id(scenario.id).meta and parse_id(scenario.id).path == "pretrained_file"
    for path in ("create_model", "state_dict", "pickle", "timm_hub", "pretrained_file"):
        result = _run("test_vit2", path)
        assert result.status == "passed", (path, result.message)
        assert result.evidence["output"] is None  # nothing ran: no values on meta


def test_the_structural_create_model_cell_is_the_source_build_and_a_constructor_that_raises_fails_it(monkeypatch):
    """On meta the create_model path's load is `timm.create_model(name)` under the context the source was built
    in: the cell reports that build instead of building it a second time to compare with the first, and
    a constructor that raises still fails it by name while the model's other cells error as unbuildable."""
    real, builds = timm.create_model, []

    def counted(name, *args, **kwargs):
        builds.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", counted)
    cache = SourceCache()
    baseline = run_scenario(Scenario("test_vit2", "create_model", meta=True), cache)
    assert baseline.status == "passed" and builds == ["test_vit2"], (baseline.message, builds)
    assert baseline.evidence["extra"]["built_keys"] == len(real("test_vit2").state_dict())
    bogus = Override.of("bogus", no_such_argument=1)
    broken = run_scenario(Scenario("test_vit2", "create_model", bogus, meta=True), cache)
    other = run_scenario(Scenario("test_vit2", "pickle", bogus, meta=True), cache)
    assert (broken.status, broken.signature) == ("failed", "exception:TypeError"), broken.message
    assert (other.status, other.signature) == ("error", "source-unbuildable"), other.message


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


def test_a_tensor_a_lenient_load_never_writes_is_named_and_a_rightly_fresh_head_is_not(monkeypatch):
    """A class-count override makes load_pretrained drop the checkpoint's head and load non-strict: the head stays
    as built, rightly. A filter that also drops another key then goes unreported by timm; on meta no value shows
    it, but no copy reached it, and the cell names that tensor alone as silent-reinit."""
    override = Override.of("num_classes_10", num_classes=10)
    assert _run("test_vit2", "pretrained_file", override).status == "passed"
    real = vision_transformer.checkpoint_filter_fn

    def dropping(state_dict, model, *args, **kwargs):
        return {k: v for k, v in real(state_dict, model, *args, **kwargs).items() if k != "blocks.0.norm1.weight"}

    monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn", dropping)
    result = _run("test_vit2", "pretrained_file", override)
    assert (result.status, result.signature) == ("failed", "silent-reinit"), result.message
    assert result.evidence["unwritten"] == ["blocks.0.norm1.weight"], result.evidence


def test_a_first_conv_no_helper_adapts_is_rightly_fresh_and_a_conv_kernel_is_not(monkeypatch):
    """timm's adapt_input_conv adapts only Conv2d kernels; for a Linear patch projection (Gemma4's input_proj) it
    raises NotImplementedError and load_pretrained keeps the layer's init, with a warning: what the loader documents,
    so the in_chans cell passes. The same fallback taken for a Conv2d stem is a failure."""
    from timm.models import _builder

    gemma = "gemma4_vit_167m_enc"
    assert _run(gemma, "pretrained_file", Override.of("in_chans_1", in_chans=1)).status == "passed"
    with MetaShapes():
        plain, one = (timm.create_model(gemma, **k) for k in ({}, {"in_chans": 1}))
    assert rightly_fresh(plain, one) == ["patch_embed.input_proj.weight"]

    def gives_up(*args, **kwargs):
        raise NotImplementedError("the fault: no kernel adapted")

    monkeypatch.setattr(_builder, "adapt_input_conv", gives_up)
    result = _run("test_vit2", "pretrained_file", Override.of("in_chans_1", in_chans=1))
    assert (result.status, result.signature) == ("failed", "silent-reinit"), result.message
    assert result.evidence["unwritten"] == ["patch_embed.proj.weight"], result.evidence


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


def test_a_constructor_that_needs_values_is_probed_not_called_inapplicable(monkeypatch):
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


# timm up to 1.0.15 read its stochastic-depth schedule off a tensor in over half its constructors (0.9.16's ViT:
# `dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]`), put back into today's ViT. The checks run in
# a fresh interpreter, as a matrix run does: in the selftest session after every other test file, plain meta built
# the faulted test_vit2 without raising (not understood yet; the same checks in a fresh process hold).
OLD_DROP_PATH_SCHEDULE = """
import timm, torch
from timm.models import vision_transformer
from compat_tests.core.scenario import Override, Scenario
from compat_tests.run.runner import run_scenario
from compat_tests.run.selection import count_params_meta, fp32_bytes_meta
from compat_tests.source.meta import MetaShapes, MetaShapesCpuFactories, build_on_meta, meta_limitation, on_meta
from compat_tests.source.models import SourceCache
from compat_tests.tools.cli import _generate_repro

vision_transformer.calculate_drop_path_rates = \\
    lambda rate, depth, *args, **kwargs: [x.item() for x in torch.linspace(0, rate, depth)]
try:
    with MetaShapes():
        timm.create_model("test_vit2")
    raise AssertionError("the fault must make plain meta refuse, as 0.9.16 did")
except RuntimeError as e:
    assert meta_limitation(e), e
model, context, refused = on_meta(lambda: timm.create_model("test_vit2"))
assert context is MetaShapesCpuFactories and meta_limitation(refused) and all(p.is_meta for p in model.parameters())
assert all(p.is_meta for p in build_on_meta("test_vit2").parameters())
real = timm.create_model("test_vit2")
assert count_params_meta("test_vit2") == sum(p.numel() for p in real.parameters())
assert fp32_bytes_meta("test_vit2") == sum(t.numel() * 4 for t in real.state_dict().values())
for path in ("create_model", "pickle", "pretrained_file"):
    result = run_scenario(Scenario("test_vit2", path, meta=True), SourceCache())
    assert result.status == "passed", (path, result.message)
    assert result.evidence["extra"]["meta_build"] == "cpu-factories"
vision_transformer.resample_patch_embed = lambda v, *a, **k: v
result = run_scenario(Scenario("test_vit2", "pretrained_file", Override.of("patch_size_8", patch_size=8), meta=True),
                      SourceCache())
assert (result.status, result.signature) == ("failed", "patch-resample-skipped"), result.message
assert 'with torch.device("cpu")' in result.repro
assert 'with torch.device("cpu")' in _generate_repro("test_vit2-pickle-base@meta", None)
print("checked")
"""


def test_a_release_whose_constructors_read_values_is_still_built_and_checked_on_meta():
    """Such a model is built on meta with the small factories on the CPU: counted and asked about without a real
    build (under timm 0.9.16 collection built 534 architectures for real, vit_giant among them, in every worker),
    and its cells check it rather than skip it; a failing cell's repro builds it on the CPU, as plain meta cannot."""
    done = subprocess.run([sys.executable, "-c", OLD_DROP_PATH_SCHEDULE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("checked"), done.stderr[-3000:]


def test_a_constructor_plain_meta_refuses_fails_its_create_model_cell_and_the_rest_is_checked():
    """timm 1.0.16-1.0.29's RegNet (torch.unique, which has no meta kernel, in the constructor): the structural
    create_model cell names what transformers 5's meta build meets, and its repro shows it on plain meta; the
    model's other cells are checked on the build the CPU factories give instead of erroring as unbuildable."""
    from .test_signatures import _regnet_widths_on_the_default_device

    undo = _regnet_widths_on_the_default_device()
    try:
        cache = SourceCache()
        built = run_scenario(Scenario("regnetx_002", "create_model", meta=True), cache)
        others = {path: run_scenario(Scenario("regnetx_002", path, meta=True), cache)
                  for path in ("pickle", "timm_hub", "pretrained_file")}
    finally:
        undo()
    assert (built.status, built.signature) == ("failed", "meta-build-needs-values"), built.message
    assert "aten::_unique2 has no meta kernel (raised at timm/models/regnet.py:" in built.message
    assert 'with torch.device("meta")' in built.repro
    for path, result in others.items():
        assert result.status == "passed", (path, result.message)
        assert result.evidence["extra"]["meta_build"] == "cpu-factories"
        assert "aten::_unique2" in result.evidence["extra"]["plain_meta_refused"]


def test_a_foreign_source_its_probe_built_is_not_built_again_and_its_cell_still_fails_a_renaming_filter(monkeypatch):
    """An OpenCLIP trunk checkpoint implies `num_classes`: the cell probes timm with it on meta, then builds its
    source with it. The probe's build is handed over as that source (`take_spare`), once: one build with those
    kwargs per cell, and the load into it is judged as before."""
    from compat_tests.paths.foreign import layouts_for
    from compat_tests.paths.support import overrides

    layout, implied = next((lay, kw) for lay, kw in layouts_for("test_vit2") if lay == "openclip_trunk")
    override = Override.of(layout, layout=layout, **implied)
    real, builds = timm.create_model, []

    def counted(name, *args, **kwargs):
        builds.append((kwargs.get("pretrained", False), kwargs.get("num_classes")))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", counted)
    overrides._probe.cache_clear()
    try:
        result = _run("test_vit2", "foreign", override)
        assert result.status == "passed", result.message
        assert builds.count((False, implied["num_classes"])) == 1, builds  # the probe's, taken as the source
        assert builds.count((True, implied["num_classes"])) == 1, builds  # the loader's own
        real_filter = vision_transformer.checkpoint_filter_fn
        monkeypatch.setattr(vision_transformer, "checkpoint_filter_fn", lambda state_dict, model, *a, **k: {
            key.replace("blocks.", "encoder.layers."): v for key, v in real_filter(state_dict, model, *a, **k).items()})
        overrides._probe.cache_clear()
        broken = _run("test_vit2", "foreign", override)
        assert broken.status == "failed" and broken.signature in ("key-layout-mismatch", "key-prefix-mismatch"), \
            (broken.signature, broken.message)
    finally:
        overrides._probe.cache_clear()


def test_workers_share_the_facts_collection_builds_and_keep_one_plan(monkeypatch, tmp_path):
    """xdist workers all collect the same cells; the facts of the override axis (one meta build per model) are
    left in the run's folder by whichever worker built them, and read by the others. Each worker works its own
    share out first, and the plan keeps the models' order whatever the worker."""
    from compat_tests.paths.support import overrides
    from compat_tests.run.plan import Options, _collection_order, make_plan

    options = Options(models="test_vit,test_vit2,test_vit3,resnet18", tier="structural")
    overrides.model_facts.cache_clear()
    alone = [s.id for s in make_plan(options).scenarios]
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert _collection_order(5) == [1, 3, 0, 2, 4]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert _collection_order(5) == [0, 2, 4, 1, 3]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")  # a replacement worker takes a share as well
    assert _collection_order(4) == [1, 3, 0, 2]

    # Another process of the run builds the facts and leaves them in the folder...
    folder = tmp_path / "facts"
    subprocess.run([sys.executable, "-c", "from pathlib import Path; from compat_tests.paths.support import overrides; "
                    f"overrides.share_facts(Path({str(folder)!r})); overrides.model_facts('test_vit')"],
                   check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert (folder / "test_vit.pickle").is_file()
    # ...and this one reads them instead of building: a build here would raise.
    built = overrides.model_facts("test_vit")
    overrides.model_facts.cache_clear()
    overrides.share_facts(folder)
    def no_build(name):
        raise AssertionError(f"{name} built although its facts were shared")

    try:
        monkeypatch.setattr(overrides, "meta_model", no_build)
        assert overrides.model_facts("test_vit") == built  # the class itself among them
        with pytest.raises(AssertionError):
            overrides.model_facts("test_vit2")  # nobody left these: built, as before
        monkeypatch.undo()
        overrides.model_facts.cache_clear()
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
        assert [s.id for s in make_plan(options).scenarios] == alone
    finally:
        overrides.share_facts(None)
        overrides.model_facts.cache_clear()
