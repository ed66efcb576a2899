"""Artifacts written by older releases (fixtures/manifest.json), loaded under the installed ones.

Each manifest artifact is one cell, `<model>-legacy-<producer>_<kind>`. Its files are checked against
the manifest's sha256 before anything reads them (a pickle runs code when it is loaded), then loaded
the way their kind is loaded, and judged against the producer's own reference: the state tensors it
saved and its output on the fixed seeded input.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.evidence import Evidence, from_exception
from ..core.scenario import Override
from ..core.versions import at_least, installed, missing
from ..judge.check import Check
from ..judge.oracle import OUTPUT_RTOL, compare_outputs, diff_state, forward_into, state_evidence
from ..source.models import SourceModel, make_input
from .base import LoadingPath
from .hf_auto import load_timm_wrapper
from .support import manifest
from .timm_hub import LOCAL_DIR, load_local_dir

ORDER = 120


def legacy_roundtrip(model, workdir, spec):
    """Load one manifest artifact (spec["kwargs"] names it); `model` (today's build) is not used.

    Load errors are returned, not raised, so the judge can say which releases wrote and read the file.
    """
    import hashlib
    import json
    import os

    import torch

    manifest_path = spec["kwargs"]["legacy_manifest"]
    root = os.path.dirname(manifest_path)
    with open(manifest_path) as f:
        entries = json.load(f)["artifacts"]
    entry = next(e for e in entries if e["model"] == spec["name"] and e["id"] == spec["kwargs"]["legacy_artifact"])
    result = {"entry": entry, "model": None, "stage": "verify"}
    # Integrity first: nothing of the artifact is read by torch/timm/transformers before this passes.
    for name, want in entry["sha256"].items():
        with open(os.path.join(root, name), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != want:
            result["error"] = RuntimeError(
                f"legacy artifact sha256 mismatch: {name} has {got[:16]}..., the manifest says {want[:16]}...; "
                f"refusing to load it ({entry['kind']})")
            return result

    from safetensors.torch import load_file

    reference = load_file(os.path.join(root, entry["reference"]))
    result["reference_output"] = reference.pop("output")
    result["reference_state"] = {k[len("state."):]: v for k, v in reference.items()}
    result["stage"] = "load"
    first = os.path.join(root, entry["files"][0])
    kind = entry["kind"]
    try:
        import timm

        if kind == "pickle":
            result["model"] = torch.load(first, map_location="cpu", weights_only=False)
        elif kind in ("state_dict", "safetensors"):
            loaded = timm.create_model(entry["model"], pretrained=False, **entry["kwargs"])
            if kind == "state_dict":
                state = torch.load(first, map_location="cpu", weights_only=True)
            else:
                state = load_file(first)
            info = loaded.load_state_dict(state, strict=False)
            result.update(model=loaded, missing_keys=list(info.missing_keys),
                          unexpected_keys=list(info.unexpected_keys))
        elif kind == "timm_hub":
            result.update(load_local_dir(os.path.dirname(first)))
        elif kind == "hf_pretrained":
            result.update(load_timm_wrapper(os.path.dirname(first)))
        else:
            raise ValueError(f"unknown artifact kind {kind!r}")
    except Exception as error:  # the load itself failed: that is the finding
        result["error"] = error
        return result
    result["model"].eval()
    result["stage"] = "forward"
    return result


def _find(override: Override) -> manifest.Artifact:
    kwargs = override.as_dict()
    for artifact in manifest.load():
        if artifact.id == kwargs["legacy_artifact"] and artifact.model == kwargs["legacy_model"]:
            return artifact
    raise LookupError(f"no manifest artifact {kwargs['legacy_model']}/{kwargs['legacy_artifact']}")


def legacy_overrides(model: str) -> list[Override]:
    """One cell per artifact of `model`, named `<producer>_<kind>`."""
    return [
        Override.of(a.id, legacy_manifest=str(manifest.MANIFEST), legacy_model=a.model, legacy_artifact=a.id)
        for a in manifest.for_model(model)
    ]


def legacy_source_kwargs(override: Override) -> dict[str, Any]:
    """The artifact's model arguments, so the runner's source model has the artifact's architecture."""
    return _find(override).kwargs


def legacy_applies(model: str, override: Override) -> str | None:
    """What the reading side must have: the loader the artifact's kind needs, and a timm no older than the writer.

    The path's contract is old files under new code; a file from a newer timm than the installed one is
    the reverse direction (under compat-oldest, every producer but 0.9.16), which no release promises.
    """
    artifact = _find(override)
    written_by = artifact.entry["versions"].get("timm")
    if written_by and not at_least("timm", written_by):
        return (f"written by timm {written_by}, newer than the installed timm {installed()['timm']}: "
                "this path reads older files")
    if artifact.kind == "hf_pretrained":
        return missing("transformers", "4.48", "reading a TimmWrapper save_pretrained folder")
    if artifact.kind == "timm_hub":
        return missing(*LOCAL_DIR)
    return None


def _requires() -> str | None:
    return None if manifest.load() else f"no legacy fixtures ({manifest.MANIFEST} is absent)"


def legacy_judge(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Compare with the producer's reference state and output; say which releases wrote and read it."""
    entry = loaded["entry"]
    consumer = {k: v for k, v in installed().items() if k in ("timm", "transformers", "torch")}
    extra = {"artifact": f"{entry['model']}/{entry['id']}", "kind": entry["kind"], "producer": entry["producer"],
             "producer_versions": entry["versions"], "consumer_versions": consumer, "stage": loaded["stage"]}
    error = loaded.get("error")
    if error is not None:
        evidence = from_exception(error)
        evidence.extra = extra
        return evidence
    x = make_input(tuple(entry["input_size"]), entry["seed"], entry["batch"])
    import hashlib

    # A changed RNG would make every output differ: that is the harness's problem, not the library's.
    if hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest() != entry["input_sha256"]:
        raise RuntimeError(f"the seeded input for {extra['artifact']} differs from the producer's")
    module: torch.nn.Module = loaded["model"]
    report = diff_state(loaded["reference_state"], module.state_dict())
    evidence = state_evidence(report, loaded, extra=extra)
    # Loaded, but the old object may no longer run under today's code.
    output = forward_into(evidence, loaded.get("forward") or module, x)
    if output is None:
        return evidence
    evidence.output = compare_outputs(loaded["reference_output"], output, OUTPUT_RTOL)
    return evidence


# The repro starts from the stored artifact and the producer's own reference, not from a new build.
REPRO_PREPARE = '''
spec = {spec!r}
loaded = {roundtrip}(None, tempfile.mkdtemp(dir=WORKDIR), spec)
if loaded.get("error") is not None:
    raise loaded["error"]  # the load itself fails under the installed releases
entry = loaded["entry"]
print("written by", entry["producer"], entry["versions"])
x = make_input(tuple(entry["input_size"]), entry["seed"], entry["batch"])
reference, expected_state = loaded["reference_output"], loaded["reference_state"]
expected_model = expected_buffers = None  # the producer saved its tensors and output, not a model to compare with
'''

PATH = LoadingPath(
    name="legacy",
    summary="artifacts written by older timm/transformers (fixtures/manifest.json) -> loaded by the installed ones",
    roundtrip=legacy_roundtrip,
    helpers=(load_timm_wrapper, load_local_dir),
    requires=_requires,
    overrides=legacy_overrides,
    applies=legacy_applies,
    source_kwargs=legacy_source_kwargs,
    check=Check(legacy_judge, repro_prepare=REPRO_PREPARE),
    sampled=False,
)
