"""Known failures do not hide what lies behind them: each workaround does what users do by hand, and a cell whose
known failure has one is run again with it, xfailed only when the known failure is all that is wrong.

Faults are real behaviour put into the real libraries: timm 1.0.31's save_for_hf writing num_classes into
config.json model_args (the known kwarg-conflict, put back so the test does not depend on the installed timm),
and transformers <= 4.48's gamma -> weight rename of checkpoint keys (a second fault behind it)."""

from __future__ import annotations

import json

import pytest
import torch

from compat_tests.core.scenario import Scenario
from compat_tests.paths.support.workarounds import WORKAROUNDS
from compat_tests.run.session import MatrixSession
from compat_tests.signatures import known_failures

from .test_runner_faults import legacy_transformers_rename


def _writes_num_classes(monkeypatch) -> None:
    """timm 1.0.31's save_for_hf: num_classes recorded in config.json model_args (transformers then fails)."""
    import timm.models
    from timm.models import _hub

    real = _hub.save_for_hf

    def save_for_hf(model, save_directory, *args, **kwargs):
        out = real(model, save_directory, *args, **kwargs)
        file = f"{save_directory}/config.json"
        config = json.loads(open(file).read())
        config.setdefault("model_args", {})["num_classes"] = config["num_classes"]
        open(file, "w").write(json.dumps(config))
        return out

    monkeypatch.setattr(_hub, "save_for_hf", save_for_hf)
    monkeypatch.setattr(timm.models, "save_for_hf", save_for_hf)


def test_drop_num_classes_from_model_args(monkeypatch, tmp_path, byob):
    import timm.models
    import transformers

    _writes_num_classes(monkeypatch)
    with pytest.raises(TypeError, match="multiple values for keyword argument 'num_classes'"):
        timm.models.save_for_hf(byob.model, str(tmp_path / "as_saved"))
        transformers.AutoModelForImageClassification.from_pretrained(str(tmp_path / "as_saved"))
    faulty = timm.models.save_for_hf
    undo = WORKAROUNDS["drop-num-classes-from-model-args"].apply()
    try:
        timm.models.save_for_hf(byob.model, str(tmp_path / "fixed"))
    finally:
        undo()
    assert "num_classes" not in json.loads((tmp_path / "fixed" / "config.json").read_text()).get("model_args", {})
    transformers.AutoModelForImageClassification.from_pretrained(str(tmp_path / "fixed"))
    assert timm.models.save_for_hf is faulty, "undo restores what was there"


def test_hybrid_backbone_without_download():
    from timm.models import vision_transformer_hybrid as hybrid

    with torch.device("meta"), pytest.raises(Exception, match="offline|local cache|outgoing traffic"):
        hybrid.resnet26d(pretrained=True, features_only=True)  # what the hybrid does with a local file
    real = hybrid.resnet26d
    undo = WORKAROUNDS["hybrid-backbone-without-download"].apply()
    try:
        with torch.device("meta"):
            hybrid.resnet26d(pretrained=True, features_only=True)
            hybrid.resnet50d(pretrained=True, features_only=True)
    finally:
        undo()
    assert hybrid.resnet26d is real


def test_overlay_file_without_custom_load():
    """The overlay's custom_load=False is added only where the user passes a file and left custom_load unsaid."""
    import timm

    seen = []
    real = timm.create_model
    timm.create_model = lambda *args, **kwargs: seen.append(kwargs.get("pretrained_cfg_overlay"))
    try:
        undo = WORKAROUNDS["overlay-file-without-custom-load"].apply()
        try:
            timm.create_model("vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file="w.pth"))
            timm.create_model("vit_tiny_patch16_224", pretrained=True,
                              pretrained_cfg_overlay=dict(file="w.npz", custom_load=True))
            timm.create_model("vit_tiny_patch16_224")
        finally:
            undo()
        restored = timm.create_model
    finally:
        timm.create_model = real
    assert seen == [{"file": "w.pth", "custom_load": False}, {"file": "w.npz", "custom_load": True}, None]
    assert restored is not real and restored("x") is None, "undo puts back what was there"


def _tower_buffers_after_load(name: str, folder) -> tuple[dict, dict]:
    """A user's PreTrainedModel holding a timm tower, saved and loaded back: the buffers a normal build of the
    tower holds, and the ones the loaded tower holds."""
    from compat_tests.paths.hf_custom import vision_tower_classes

    config_class, tower_class = vision_tower_classes()
    tower = tower_class(config_class(timm_name=name))
    tower.save_pretrained(str(folder))
    loaded = tower_class.from_pretrained(str(folder))
    return dict(tower.vision_tower.named_buffers()), dict(loaded.vision_tower.named_buffers())


def test_rebuild_nonpersistent_buffers_after_load(tmp_path):
    import transformers
    from packaging.version import Version

    built, loaded = _tower_buffers_after_load("test_vit_relpos", tmp_path / "as_loaded")
    differ = sorted(k for k in built if not torch.equal(built[k], loaded[k]))
    if Version(transformers.__version__) >= Version("5"):  # built on meta: timm's tables never computed
        assert "blocks.0.attn.rel_pos.relative_position_index" in differ, differ
    real = transformers.PreTrainedModel.__dict__["from_pretrained"]
    undo = WORKAROUNDS["rebuild-nonpersistent-buffers-after-load"].apply()
    try:
        built, loaded = _tower_buffers_after_load("test_vit_relpos", tmp_path / "fixed")
    finally:
        undo()
    assert [k for k in built if not torch.equal(built[k], loaded[k])] == []
    assert transformers.PreTrainedModel.__dict__["from_pretrained"] is real, "undo restores what was there"


TESTED = {"drop-num-classes-from-model-args": test_drop_num_classes_from_model_args,
          "rebuild-nonpersistent-buffers-after-load": test_rebuild_nonpersistent_buffers_after_load,
          "overlay-file-without-custom-load": test_overlay_file_without_custom_load,
          "hybrid-backbone-without-download": test_hybrid_backbone_without_download}


def test_every_workaround_has_a_selftest_and_every_named_one_exists():
    assert set(TESTED) == set(WORKAROUNDS)
    assert all(w.summary for w in WORKAROUNDS.values())
    named = {e.workaround_name for e in known_failures.load(known_failures.DEFAULT_FILE).entries}
    assert named - {None} <= set(WORKAROUNDS)


@pytest.fixture
def session(tmp_path) -> MatrixSession:
    return MatrixSession(run_id="behind", report=tmp_path / "run.jsonl")


@pytest.fixture
def baseline() -> known_failures.Baseline:
    return known_failures.load(known_failures.DEFAULT_FILE)


def test_the_known_failure_alone_stays_xfailed_and_was_checked_behind(monkeypatch, session, baseline):
    _writes_num_classes(monkeypatch)
    result = session.verdict(Scenario("test_vit2", "hf_auto"), baseline)
    assert result.status == "xfailed" and result.signature == "kwarg-conflict", result.message
    assert result.behind["status"] == "passed" and result.behind["workaround"] == "drop-num-classes-from-model-args"


def test_a_tower_whose_buffers_a_custom_model_leaves_unset_is_checked_behind_that(session, baseline):
    """transformers 5 leaves the relative-position tables of a timm tower in a user's own PreTrainedModel unset
    (the known nonpersistent-buffer-not-rebuilt): with them rebuilt as TimmWrapper rebuilds them, the load passes."""
    import transformers
    from packaging.version import Version

    result = session.verdict(Scenario("test_vit_relpos", "hf_custom"), baseline)
    if Version(transformers.__version__) < Version("5"):
        assert result.status == "passed", result.message  # 4.x builds the tower on real tensors
        return
    assert result.status == "xfailed" and result.signature == "nonpersistent-buffer-not-rebuilt", result.message
    assert result.behind["status"] == "passed", result.behind
    assert result.behind["workaround"] == "rebuild-nonpersistent-buffers-after-load"


def test_a_second_fault_behind_the_known_one_is_a_new_failure(monkeypatch, session, baseline):
    _writes_num_classes(monkeypatch)
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: legacy_transformers_rename(real_load(*a, **kw)))
    result = session.verdict(Scenario("test_vit2", "hf_auto"), baseline)
    assert result.status == "failed" and result.signature == "layerscale-gamma-renamed", result.message
    assert "behind the known kwarg-conflict" in result.message and "blocks.0.ls1.gamma" in result.message
    assert result.behind["front"]["signature"] == "kwarg-conflict"
    # The recorded evidence is the second failure's, so re-classifying the record gives its name back.
    from compat_tests.signatures.catalog import classify_record

    assert classify_record(result)[0] == "layerscale-gamma-renamed"
    # Its repro applies the workaround first, as the cell did, so it reaches the failure behind the known one.
    assert "def drop_num_classes_from_model_args" in result.repro
    assert "\ndrop_num_classes_from_model_args()" in result.repro


# The ViT-ResNet hybrids' hf_to_timm cell stops at two known failures in a row, each with its own workaround:
# timm 1.0.31's num_classes in model_args (kwarg-conflict), then the hybrid's backbone asking the hub for weights
# on a local load (hub-access-on-local-load).
HYBRID = Scenario("vit_small_resnet26d_224", "hf_to_timm")
KWARG, HUB = "drop-num-classes-from-model-args", "hybrid-backbone-without-download"


def test_two_known_failures_in_a_row_are_both_got_past_and_the_load_behind_them_checked(monkeypatch, session,
                                                                                       baseline):
    _writes_num_classes(monkeypatch)
    result = session.verdict(HYBRID, baseline)
    assert result.status == "xfailed" and result.signature == "kwarg-conflict", result.message
    assert result.behind["status"] == "passed", result.behind
    assert result.behind["workaround"] == f"{KWARG} + {HUB}"
    assert result.behind["through"] == [{"signature": "hub-access-on-local-load", "workaround": HUB}]


def test_a_fault_behind_two_known_failures_is_a_new_failure_with_both_workarounds_in_its_repro(monkeypatch, session,
                                                                                              baseline):
    from .test_quick_init import _loader_drops

    _writes_num_classes(monkeypatch)
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", _loader_drops("blocks.0.mlp.fc1.weight"))
    result = session.verdict(HYBRID, baseline)
    assert result.status == "failed" and result.signature == "tensor-mismatch", result.message
    assert result.message.startswith(f"behind the known kwarg-conflict (with {KWARG}), then hub-access-on-local-load "
                                     f"(with {HUB}): "), result.message
    assert "blocks.0.mlp.fc1.weight" in result.message
    for name in ("drop_num_classes_from_model_args", "hybrid_backbone_without_download"):
        assert f"\n{name}()" in result.repro


def _result(signature: str = "", status: str = "failed"):
    from compat_tests.core.result import Result

    return Result.for_scenario(HYBRID, status, "behind", signature=signature, message=f"{signature or status} here")


def test_the_deepest_failure_reached_is_what_the_cell_shows():
    from compat_tests.run.runner import behind_known

    # The second workaround does not get past the second known failure: the cell shows that one, not the first.
    stuck = behind_known(_result("kwarg-conflict"), [_result("hub-access-on-local-load"),
                                                     _result("hub-access-on-local-load")], [KWARG, HUB])
    assert (stuck.signature, stuck.behind["status"]) == ("hub-access-on-local-load", "not past it")
    assert stuck.message == f"behind the known kwarg-conflict (with {KWARG}): hub-access-on-local-load here"
    # The first does not get past the first: nothing behind it was reached.
    first = behind_known(_result("kwarg-conflict"), [_result("kwarg-conflict")], [KWARG])
    assert (first.signature, first.behind["status"], first.message) == ("kwarg-conflict", "not past it",
                                                                        "kwarg-conflict here")
    assert "through" not in first.behind
    # A harness error behind them is the cell's.
    error = behind_known(_result("kwarg-conflict"), [_result("hub-access-on-local-load"), _result("x", "error")],
                         [KWARG, HUB])
    assert (error.status, error.signature) == ("error", "x")
