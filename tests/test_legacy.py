"""The legacy path: committed fixtures from older releases, and faults put back into today's timm."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from compat_tests.core.scenario import Override, Scenario
from compat_tests.core.versions import installed
from compat_tests.paths.legacy import legacy_overrides
from compat_tests.paths.support import manifest
from compat_tests.run.runner import run_scenario
from compat_tests.source.models import SourceCache

MB = 1_000_000


def _generator():
    spec = importlib.util.spec_from_file_location("legacy_generate", manifest.FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(model: str, artifact: str, override: Override | None = None):
    override = override or next(o for o in legacy_overrides(model) if o.name == artifact)
    return run_scenario(Scenario(model, "legacy", override), SourceCache())


def test_fixtures_are_committed_verified_and_under_the_cap():
    artifacts = manifest.load()
    producers = {a.producer for a in artifacts}
    assert {"timm0.9.16", "timm1.0.3", "timm1.0.9", "transformers4.48.3"} <= producers
    assert {a.kind for a in artifacts} == set(manifest.KINDS)
    assert manifest.total_size() < 30 * MB
    for artifact in artifacts:
        assert manifest.verify(artifact) == [], artifact.id


def test_every_artifact_names_its_producer_and_the_command_that_regenerates_it():
    generate = _generator()
    for artifact in manifest.load():
        entry = artifact.entry
        assert entry["command"] == f"python fixtures/generate.py --producer {artifact.producer}"
        assert artifact.producer in generate.PRODUCERS
        package, version = ("transformers", entry["versions"]["transformers"]) if artifact.producer.startswith(
            "transformers") else ("timm", entry["versions"]["timm"])
        assert artifact.producer == f"{package}{version}"
        assert entry["seed"] == generate.SEED and entry["reference"] in entry["sha256"]


def test_cell_ids_name_the_producer_with_no_dash_inside_a_part():
    for model in manifest.models():
        for override in legacy_overrides(model):
            scenario = Scenario(model, "legacy", override)
            assert scenario.id.split("-") == [model, "legacy", override.name]
            assert override.name.split("_")[0] in {a.producer for a in manifest.for_model(model)}


@pytest.mark.parametrize("artifact", ["timm0.9.16_pickle", "timm1.0.3_pickle", "timm1.0.9_pickle"])
def test_old_convnormact_pickles_load_faithfully(artifact):
    result = _run("regnetx_002", artifact)
    assert result.status == "passed", result.message
    assert result.evidence["output"]["ok"] and result.evidence["extra"]["producer"] == artifact.split("_")[0]


def _forward_reading_aa(self, x):
    """ConvNormAct.forward as timm 1.0.7-1.0.11 wrote it: `self.aa` read directly."""
    x = self.conv(x)
    x = self.bn(x)
    if self.aa is not None:
        x = self.aa(x)
    return x


@pytest.mark.parametrize("producer", ["timm0.9.16", "timm1.0.3"])
def test_direct_aa_read_breaks_pickles_from_before_the_aa_attribute(monkeypatch, producer):
    from timm.layers import conv_bn_act

    monkeypatch.setattr(conv_bn_act.ConvNormAct, "forward", _forward_reading_aa)
    result = _run("regnetx_002", f"{producer}_pickle")
    assert result.status == "failed"
    assert result.signature == "missing-attribute-after-unpickle"
    assert "ConvNormAct.aa" in result.message
    assert f"written by timm {producer.removeprefix('timm')}" in result.message
    assert f"read by timm {installed()['timm']}" in result.message


def test_direct_aa_read_keeps_pickles_that_have_the_attribute_working(monkeypatch):
    from timm.layers import conv_bn_act

    monkeypatch.setattr(conv_bn_act.ConvNormAct, "forward", _forward_reading_aa)
    assert _run("regnetx_002", "timm1.0.9_pickle").status == "passed"


def test_a_class_gone_from_its_module_is_named(monkeypatch):
    from timm.layers import conv_bn_act

    monkeypatch.delattr(conv_bn_act, "ConvNormAct")
    result = _run("regnetx_002", "timm1.0.3_pickle")
    assert result.status == "failed" and result.signature == "class-moved-or-renamed"
    assert "timm.layers.conv_bn_act.ConvNormAct" in result.message


def test_same_tensors_other_numbers_is_a_legacy_output_mismatch(monkeypatch):
    from timm.layers import conv_bn_act

    real = conv_bn_act.ConvNormAct.forward
    monkeypatch.setattr(conv_bn_act.ConvNormAct, "forward", lambda self, x: real(self, x) * 1.01)
    result = _run("regnetx_002", "timm1.0.3_state_dict")
    assert result.status == "failed" and result.signature == "legacy-output-mismatch"
    assert "timm 1.0.3" in result.message


def test_a_tampered_pickle_is_refused_before_it_is_unpickled(tmp_path, monkeypatch):
    root = tmp_path / "fixtures"
    artifact = next(a for a in manifest.for_model("regnetx_002") if a.id == "timm1.0.3_pickle")
    for name in artifact.entry["sha256"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(manifest.FIXTURES / name, root / name)
    (root / "manifest.json").write_text(json.dumps({"artifacts": [artifact.entry]}))
    pickle = root / artifact.entry["files"][0]
    data = bytearray(pickle.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the archive
    pickle.write_bytes(bytes(data))
    loads: list[str] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **kw: loads.append(str(f)) or real_load(f, *a, **kw))
    override = Override.of("timm1.0.3_pickle", legacy_manifest=str(root / "manifest.json"),
                           legacy_model="regnetx_002", legacy_artifact="timm1.0.3_pickle")
    result = _run("regnetx_002", "timm1.0.3_pickle", override)
    assert result.status == "failed" and result.signature == "legacy-artifact-tampered"
    assert str(Path(artifact.entry["files"][0])) in result.message
    assert loads == []


def test_a_reader_older_than_the_writer_or_without_local_dir_is_not_applicable(monkeypatch):
    # What compat-oldest sees: the reader is timm 0.9.16, which has no `local-dir:` scheme and is older
    # than every producer but itself. Only the reported version is changed; the artifacts are the real ones.
    from compat_tests.core import versions
    from compat_tests.paths import legacy

    oldest = {**installed(), "timm": "0.9.16", "transformers": "4.47.1"}
    monkeypatch.setattr(legacy, "installed", lambda: oldest)
    monkeypatch.setattr(versions, "installed", lambda: oldest)
    reasons = {o.name: legacy.legacy_applies("regnetx_002", o) for o in legacy_overrides("regnetx_002")}
    assert reasons["timm0.9.16_pickle"] is None and reasons["timm0.9.16_state_dict"] is None
    assert "local-dir" in reasons["timm0.9.16_timm_hub"] and "timm>=1.0.16" in reasons["timm0.9.16_timm_hub"]
    assert reasons["timm1.0.3_pickle"] == (
        "written by timm 1.0.3, newer than the installed timm 0.9.16: this path reads older files")
    assert all(reasons[n] for n in reasons if not n.startswith("timm0.9.16"))
