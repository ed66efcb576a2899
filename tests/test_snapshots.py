"""The cross-version snapshots' reader (compat_tests/paths/support/snapshots.py) against the committed files in
fixtures/cross_version/, and the meta context their generator builds old releases' models in."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import lzma
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import timm
import torch

from compat_tests.paths.support import snapshots
from compat_tests.source.meta import MetaShapesCpuFactories

MB = 1_000_000
PRODUCERS = ["timm0.9.16", "timm1.0.3", "timm1.0.9", "timm1.0.15", "timm1.0.20", "timm1.0.26", "timm1.0.30",
             "transformers4.48.3", "transformers4.53.3", "transformers4.57.6", "transformers5.0.0"]
# Architectures whose every snapshot is checked against the files, read independently of the reader.
SAMPLE = ("resnet18", "vit_tiny_patch16_224", "convnext_atto", "efficientnet_b0", "swin_tiny_patch4_window7_224",
          "beit_base_patch16_224", "levit_128s", "test_vit", "regnetx_002", "cait_xxs24_224")


def _generator():
    spec = importlib.util.spec_from_file_location("cross_version_generate", snapshots.GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _text(producer: str) -> str:
    return lzma.decompress((snapshots.SNAPSHOTS / f"{producer}.json.xz").read_bytes()).decode("ascii")


def _record(producer: str, arch: str) -> dict | None:
    """One architecture's record as the generator wrote it, decoded here with json rather than by the reader
    (canonical JSON escapes line breaks, so only the layout's own line breaks delimit a record)."""
    text, opening = _text(producer), f"\n{json.dumps(arch)}:{{\n"
    start = text.find(opening)
    return None if start < 0 else json.JSONDecoder().raw_decode(text, start + len(opening) - 2)[0]


def test_every_producer_is_listed_in_release_order_and_each_file_matches_the_manifest():
    assert snapshots.producers() == PRODUCERS
    manifest = json.loads(snapshots.MANIFEST.read_text())
    total = 0
    for producer in PRODUCERS:
        entry = manifest["producers"][producer]
        data = (snapshots.SNAPSHOTS / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], producer
        assert entry["command"] == f"python fixtures/cross_version/generate.py --producer {producer}"
        assert entry["architectures"] > 0 and entry["seconds"] > 0 and entry["packages"]
        package = "transformers" if producer.startswith("transformers") else "timm"
        versions = snapshots.producer_versions(producer)
        assert producer == f"{package}{versions[package]}"
        assert versions["torch"] and versions["huggingface_hub"] and versions["python"]
        assert snapshots.producer_packages(producer) == entry["packages"]
        total += len(data)
    assert total == manifest["total_bytes"] < 15 * MB
    timm_producers = [p for p in PRODUCERS if p.startswith("timm")]
    assert [p for p in PRODUCERS if "pickles" in manifest["producers"][p]] == timm_producers


@pytest.mark.parametrize("producer", ["timm0.9.16", "transformers4.48.3", "transformers5.0.0"])
def test_a_file_is_canonical_json_with_one_item_per_line(producer: str):
    # the reader hashes each line's text as the content's canonical encoding: that must hold for the whole file
    text = _text(producer)
    gc.disable()  # a whole file is millions of small lists: nothing for the cyclic collector to find
    try:
        doc = json.loads(text)
    finally:
        gc.enable()
    assert text.replace("\n", "").encode() == snapshots.canonical(doc)
    assert text.count("\n") > 2 * len(doc["architectures"])


def test_resnet18_has_a_state_dict_snapshot_written_by_the_oldest_and_newest_timm():
    found = snapshots.snapshots_for("resnet18")
    state = [s for s in found if s.kind == "state_dict"]
    assert any({"timm0.9.16", "timm1.0.30"} <= set(s.producers) for s in state), [s.producers for s in state]
    headless = [s for s in found if s.kind == "headless"]
    assert headless and all("fc.weight" not in s.content and "conv1.weight" in s.content for s in headless)
    assert all(s.content["config"]["architecture"] == "resnet18" for s in found if s.kind == "hub")
    assert {s.kind for s in found} == set(snapshots.KINDS)
    assert snapshots.snapshots_for("resnet18") == found  # cached: the same snapshots, not a second parse


def _contents(arch: str) -> dict[str, dict[str, object]]:
    """kind -> producer -> content, from the raw files (the generator's own delta code rebuilds headless)."""
    generate = _generator()
    out: dict[str, dict[str, object]] = {kind: {} for kind in snapshots.KINDS}
    for producer in PRODUCERS:
        record = _record(producer, arch)
        if record is None:
            continue
        if producer.startswith("transformers"):
            if "hf_config" in record:
                out["hf_config"][producer] = {"config": record["hf_config"], "schema": record["hf_schema"]}
            continue
        if "default" in record:
            out["state_dict"][producer] = record["default"]
            if "config" in record:
                out["hub"][producer] = {"config": record["config"], "schema": record["default"]}
            if "headless_delta" in record:
                out["headless"][producer] = generate.apply_headless_delta(record["default"],
                                                                          record["headless_delta"])
        if record.get("pickle"):
            out["pickle"][producer] = record["pickle"]
    return out


@pytest.mark.parametrize("arch", SAMPLE)
def test_grouping_by_digest_is_exact(arch: str):
    expected = _contents(arch)
    found = snapshots.snapshots_for(arch)
    assert found, arch
    for kind in snapshots.KINDS:
        digests = {p: (c if kind == "pickle" else hashlib.sha256(snapshots.canonical(c)).hexdigest())
                   for p, c in expected[kind].items()}
        of_kind = [s for s in found if s.kind == kind]
        # one snapshot per distinct digest, holding exactly the producers that wrote it, in release order
        assert {s.digest: s.producers for s in of_kind} == {
            d: tuple(p for p in PRODUCERS if digests.get(p) == d) for d in set(digests.values())}, (arch, kind)
        for snap in of_kind:
            assert snap.digest == digests[snap.producers[0]]
            assert snap.content == expected[kind][snap.producers[0]]
            assert not set(snap.skipped) & set(snap.producers)
            family = "transformers" if kind == "hf_config" else "timm"
            lacking = {p for p in PRODUCERS if p.startswith(family) and p not in digests}
            assert set(snap.skipped) == lacking, (arch, kind)


def test_an_architecture_no_release_had_has_no_snapshots_and_old_ones_say_why_not():
    assert snapshots.snapshots_for("no_such_architecture") == []
    newest_only = [a for a in snapshots.architectures("timm1.0.30") if a not in
                   set(snapshots.architectures("timm0.9.16"))]
    assert newest_only
    snap = next(s for s in snapshots.snapshots_for(newest_only[0]) if s.kind == "state_dict")
    assert "timm0.9.16" not in snap.producers and "registry" in snap.skipped["timm0.9.16"]


def _verify_in_child(cache: Path, producer: str, arch: str) -> str:
    """verify_pickle in a fresh interpreter whose TIMM_COMPAT_CACHE is `cache`: the environment variable is
    read when the reader is imported."""
    code = ("import sys; from compat_tests.paths.support import snapshots as s; "
            "print(s.CACHE); print(s.verify_pickle(sys.argv[1], sys.argv[2]))")
    env = dict(os.environ, TIMM_COMPAT_CACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", code, producer, arch], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == str(cache / "cross_version")
    return out[1]


def test_verify_pickle_refuses_a_tampered_copy_in_a_cache_named_by_timm_compat_cache(tmp_path: Path):
    producer, arch = "timm1.0.30", "resnet18"
    target = tmp_path / "cross_version" / producer / f"{arch}.pt"
    assert _verify_in_child(tmp_path, producer, arch).startswith("absent: ")
    genuine = snapshots.CACHE / producer / f"{arch}.pt"
    target.parent.mkdir(parents=True)
    if snapshots.verify_pickle(producer, arch) is None:  # this machine generated the cache: start from it
        shutil.copyfile(genuine, target)
        assert _verify_in_child(tmp_path, producer, arch) == "None"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 1
    else:
        data = bytearray(b"PK\x03\x04 not the pickle timm 1.0.30 wrote")
    target.write_bytes(bytes(data))
    message = _verify_in_child(tmp_path, producer, arch)
    assert message.startswith("sha256 mismatch: ") and message.endswith("refusing to load"), message


def test_missing_pickles_counts_an_empty_cache_and_ensure_leaves_complete_ones_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "CACHE", tmp_path)
    manifest = json.loads(snapshots.MANIFEST.read_text())["producers"]
    assert snapshots.missing_pickles("timm0.9.16") == manifest["timm0.9.16"]["pickles"]["count"]
    assert snapshots.missing_pickles("transformers5.0.0") == 0
    said: list[str] = []
    assert snapshots.ensure_pickles(["transformers4.48.3", "transformers5.0.0"], said.append) == {}
    assert said == []


def test_a_cold_cache_is_refilled_with_only_the_models_a_run_reads(tmp_path, monkeypatch):
    """A one-model run on a fresh machine generates that model's pickle, not the release's whole registry (which
    took minutes per release): the real generator, the real producer release, an empty cache."""
    monkeypatch.setattr(snapshots, "CACHE", tmp_path)
    producer = "timm1.0.30"
    assert snapshots.missing_pickles(producer, ["test_vit"]) == 1
    assert snapshots.missing_pickles(producer, ["test_vi?", "no_such_model"]) == 1
    said: list[str] = []
    assert snapshots.ensure_pickles([producer], said.append, ["test_vit"]) == {}
    assert [p.name for p in (tmp_path / producer).iterdir()] == ["test_vit.pt"]
    assert snapshots.verify_pickle(producer, "test_vit") is None
    assert snapshots.missing_pickles(producer, ["test_vit"]) == 0
    assert snapshots.missing_pickles(producer) > 1000  # the rest of the registry is still absent
    assert any("generated 1 pickles" in line for line in said), said


def test_the_variant_meta_context_builds_todays_timm_with_parameters_on_meta():
    with MetaShapesCpuFactories():
        schedule = torch.linspace(0, 0.1, 4)  # what timm 0.9 reads with .item() while building
        model = timm.create_model("vit_tiny_patch16_224")
        byob = timm.create_model("test_byobnet")
    assert schedule.device.type == "cpu" and schedule[-1].item() == pytest.approx(0.1)
    for built in (model, byob):
        assert {p.device.type for p in built.parameters()} == {"meta"}
    assert sum(p.numel() for p in model.parameters()) == 5_717_416
    # what stays on the CPU is small: BatchNorm's step counter, made with torch.tensor
    assert all(t.numel() == 1 for t in byob.state_dict().values() if t.device.type == "cpu")
