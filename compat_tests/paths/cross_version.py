"""Files that older releases wrote, for every architecture, read by the installed releases.

Each cell replays one distinct snapshot (`fixtures/cross_version/`, written by
`fixtures/cross_version/generate.py`): what a release's `state_dict()` holds (keys, shapes, dtypes), with and
without its classifier; the `config.json` its `save_for_hf` wrote; its whole-object pickle built on the meta
device; and the `config.json` TimmWrapper's `save_pretrained` wrote. Releases that wrote byte-identical
content share one cell, named after the first of them (`convnext_tiny-cross_version-timm0.9.16_state_dict`);
its record lists every release that wrote it, so the cost grows with what changed between releases.

The snapshot becomes a checkpoint (meta tensors on the meta device; seeded tensors otherwise) and goes
through the architecture's real loaders: `create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))`
(its checkpoint_filter_fn), `local-dir:` with the old config.json, and transformers' Auto classes. timm loads a
headless checkpoint non-strictly (the classifier it would drop is absent), so what `load_state_dict` left
unfilled is recorded around that call: a load that leaves a tensor at its initial value fails even when timm
reports nothing. A pickle is unpickled only after its sha256 matches the committed snapshot, then run forward
on the meta device, where the attribute reads that broke real users happen.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..core.evidence import Evidence, NotApplicable, from_exception
from ..core.scenario import Override
from ..core.versions import at_least, installed, missing
from ..judge.check import Check
from ..source.meta import meta_limitation
from ..source.models import SourceModel
from .base import LoadingPath
from .support import snapshots

ORDER = 125

# What each kind of snapshot is, for ids and messages.
KINDS = {
    "state_dict": "the default model's state_dict",
    "headless": "the headless model's state_dict (num_classes=0)",
    "hub": "save_for_hf's config.json with the default state_dict",
    "pickle": "torch.save(model) of the default model",
    "hf_config": "TimmWrapper save_pretrained's config.json and weights",
}
LOCAL_DIR = ("timm", "1.0.16", "local-dir: loading")


def recording_loads(build):
    """Run `build()` (a timm loader) and return (its model or None, the exception or None, what the first
    `load_state_dict` call was given against the module it loaded into).

    timm loads non-strictly wherever it drops a classifier (num_classes differs from the checkpoint's), and
    then ignores what torch returns: recording the call is how a tensor left unfilled is seen at all.
    torch fills BatchNorm's num_batches_tracked in itself, so a checkpoint may rightly lack it.
    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import torch

    calls = []
    original = torch.nn.Module.load_state_dict

    def load_state_dict(self, state_dict, *args, **kwargs):
        own = self.state_dict()
        calls.append({
            "missing": sorted(k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")),
            "unexpected": sorted(k for k in state_dict if k not in own),
            "shape": [(k, list(v.shape), list(own[k].shape)) for k, v in state_dict.items()
                      if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)],
        })
        return original(self, state_dict, *args, **kwargs)

    torch.nn.Module.load_state_dict = load_state_dict
    model = error = None
    try:
        model = build()
    except Exception as e:  # the load itself failed: that is the finding
        error = e
    finally:
        torch.nn.Module.load_state_dict = original
    return model, error, (calls[0] if calls else None)


def cross_version_load(spec, folder):
    """Load what an older release wrote into `folder` (see `KINDS`) with the installed releases; returns
    {"model", "missing_keys", "unexpected_keys", "shape_mismatches", "error", "stage", "loader"}: errors are
    returned, not raised, so the judge can say which releases wrote and read the file.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import os

    import timm
    import torch

    arch, kind, meta = spec["name"], spec["kwargs"]["cv_kind"], torch.empty(0).is_meta
    result = {"model": None, "stage": "load", "loader": None, "error": None}

    def timm_load(loader, build):
        result["loader"] = loader
        model, error, seen = recording_loads(build)
        result.update(model=model, error=error)
        if seen:
            result.update(missing_keys=seen["missing"], unexpected_keys=seen["unexpected"],
                          shape_mismatches=seen["shape"])
        return error is None and not (seen and (seen["missing"] or seen["unexpected"] or seen["shape"]))

    if kind in ("state_dict", "headless"):
        kwargs = {"num_classes": 0} if kind == "headless" else {}
        timm_load("create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))",
                  lambda: timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(
                      file=os.path.join(folder, "checkpoint.pth")), **kwargs))
        return result
    if kind == "pickle":
        file = os.path.join(folder, "model.pt")
        result["loader"] = "torch.load(weights_only=False)"
        try:
            model = torch.load(file, weights_only=False)
        except Exception as e:
            result["error"] = e
            return result
        result.update(model=model, stage="forward")
        cfg = dict(getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {})
        size = tuple(cfg.get("input_size") or (3, 224, 224))
        # The suite's pickles hold no data (every tensor on meta): the input goes where the model's tensors are.
        device = next((t.device for t in model.state_dict().values()), torch.device("cpu"))
        x = torch.zeros((1, *size), device=device)
        try:
            with torch.no_grad():
                model.eval()(x)
        except Exception as e:  # an attribute today's forward reads and the old object never had
            result["error"] = e
        return result
    # hub / hf_config: a folder with an old config.json and weights.
    if at_least_version(timm.__version__, "1.0.16"):
        if not timm_load("create_model('local-dir:' + folder, pretrained=True)",
                         lambda: timm.create_model("local-dir:" + folder, pretrained=True)):
            return result
    try:
        import transformers
    except ImportError:
        return result
    if not at_least_version(transformers.__version__, "4.48"):
        return result
    import json

    # A model saved without a classifier (num_classes=0) is a feature extractor, which transformers documents
    # loading with AutoModel: AutoModelForImageClassification refuses a checkpoint without a classifier.
    with open(os.path.join(folder, "config.json")) as f:
        headless = json.load(f).get("num_classes") == 0
    auto = transformers.AutoModel if headless else transformers.AutoModelForImageClassification
    result["loader"] = f"transformers {auto.__name__}"
    result["stage"] = "config"
    try:
        config = transformers.AutoConfig.from_pretrained(folder)
        result["stage"] = "load"
        if meta:  # from_pretrained refuses a meta context: the config builds the model, keys are compared here
            wrapper = auto.from_config(config)
            own = {k.removeprefix("timm_model."): v for k, v in wrapper.state_dict().items()}
            saved = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="meta", weights_only=True)
            result.update(missing_keys=sorted(k for k in own if k not in saved),
                          unexpected_keys=sorted(k for k in saved if k not in own),
                          shape_mismatches=[(k, list(v.shape), list(own[k].shape)) for k, v in saved.items()
                                            if k in own and tuple(v.shape) != tuple(own[k].shape)])
        else:
            wrapper, info = auto.from_pretrained(folder, output_loading_info=True)
            result.update(missing_keys=[k.removeprefix("timm_model.") for k in info["missing_keys"]],
                          unexpected_keys=[k.removeprefix("timm_model.") for k in info["unexpected_keys"]],
                          shape_mismatches=[(k.removeprefix("timm_model."), list(a), list(b))
                                            for k, a, b in info.get("mismatched_keys") or []])
        result["model"] = wrapper.timm_model
    except Exception as e:
        result["error"] = e
    return result


def at_least_version(version, wanted):
    """Whether a release string ("1.0.16.dev0", "4.48.3") is at least `wanted`, by its leading numbers.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import re

    def numbers(text):
        return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0])[:3])

    return numbers(version) >= numbers(wanted)


def _snapshot(spec: dict[str, Any]) -> snapshots.Snapshot:
    kwargs = spec["kwargs"]
    for snap in snapshots.snapshots_for(spec["name"]):
        if snap.kind == kwargs["cv_kind"] and snap.digest == kwargs["cv_digest"]:
            return snap
    raise LookupError(f"no {kwargs['cv_kind']} snapshot {kwargs['cv_digest'][:12]} of {spec['name']} in "
                      f"{snapshots.SNAPSHOTS}")


def _write(snap: snapshots.Snapshot, folder: str, meta: bool, seed: int) -> None:
    """The snapshot as the files its release wrote: a checkpoint of its schema, its config.json beside."""
    import json
    import os
    import shutil

    import torch

    if snap.kind == "pickle":
        producer = snap.producers[0]
        if problem := snapshots.verify_pickle(producer, snap.arch):
            raise RuntimeError(problem)  # before anything unpickles it: a pickle runs code when loaded
        shutil.copyfile(snapshots.pickle_path(producer, snap.arch), os.path.join(folder, "model.pt"))
        return
    content = snap.content
    schema = content["schema"] if snap.kind in ("hub", "hf_config") else content
    state = materialize(schema, meta, seed)
    if snap.kind in ("state_dict", "headless"):
        torch.save(state, os.path.join(folder, "checkpoint.pth"))
        return
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(content["config"], f, indent=2)
    torch.save(state, os.path.join(folder, "pytorch_model.bin"))


def materialize(schema: dict[str, Any], meta: bool, seed: int) -> dict[str, Any]:
    """A state dict of `schema` ({key: [shape, dtype]}): meta tensors, or seeded values (integers zero)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(schema):
        shape, dtype = schema[key]
        dtype = getattr(torch, dtype)
        if meta:
            state[key] = torch.empty(shape, dtype=dtype, device="meta")
        elif dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=generator).to(dtype)
        else:
            state[key] = torch.zeros(shape, dtype=dtype)
    return state


def cross_version_roundtrip(model, workdir, spec):
    """Write the cell's snapshot as its release wrote it, then load it with the installed releases."""
    import torch

    snap = _snapshot(spec)
    meta = torch.empty(0).is_meta  # the structural tier runs every cell inside a meta device context
    result = {"snapshot": snap, "stage": "verify", "model": None, "error": None}
    try:
        _write(snap, workdir, meta, spec["seed"])
    except Exception as e:  # a tampered pickle: refused, never loaded
        result["error"] = e
        return result
    return {**cross_version_load(spec, workdir), "snapshot": snap}


def cross_version_overrides(model: str) -> list[Override]:
    """One cell per distinct snapshot of `model`, named after the first release that wrote it (and carrying
    what its repro needs to have that release write the file again)."""
    return [
        Override.of(f"{snap.producers[0]}_{snap.kind}", cv_kind=snap.kind, cv_digest=snap.digest,
                    cv_release=snap.producers[0], cv_packages=tuple(snapshots.producer_packages(snap.producers[0])))
        for snap in snapshots.snapshots_for(model) if snap.content is not None
    ]


def cross_version_applies(model: str, override: Override) -> str | None:
    """Old files under new code: a file from a newer release than the installed one is the reverse direction
    (under compat-oldest, most producers), which no release promises; and each kind needs its loader."""
    kwargs = override.as_dict()
    written = snapshots.producer_versions(kwargs["cv_release"])
    package = "transformers" if kwargs["cv_release"].startswith("transformers") else "timm"
    if written.get(package) and installed().get(package) and not at_least(package, written[package]):
        return (f"written by {package} {written[package]}, newer than the installed {package} "
                f"{installed()[package]}: this path reads older files")
    if kwargs["cv_kind"] == "hf_config":
        return missing("transformers", "4.48", "reading a TimmWrapper save_pretrained folder")
    if kwargs["cv_kind"] == "hub" and (reason := missing(*LOCAL_DIR)):
        # transformers reads the same folder (TimmWrapper): with neither loader there is nothing to check
        if missing("transformers", "4.48", "TimmWrapper") is not None:
            return reason
    return None


def _requires() -> str | None:
    return None if snapshots.producers() else f"no snapshots ({snapshots.SNAPSHOTS} is absent)"


def cross_version_judge(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """What the load did with the old file: an exception, keys the loader was given and did not fill (or filled
    from keys it does not have), shapes changed. Used on the meta device and with seeded tensors alike."""
    snap: snapshots.Snapshot = loaded["snapshot"]
    error = loaded.get("error")
    extra = {
        "artifact": f"{snap.arch}/{snap.producers[0]}_{snap.kind}", "kind": snap.kind,
        "producer": snap.producers[0], "written_by": list(snap.producers),
        "producer_versions": snapshots.producer_versions(snap.producers[0]),
        "consumer_versions": {k: v for k, v in installed().items() if k in ("timm", "transformers", "torch")},
        "stage": loaded.get("stage"), "loader": loaded.get("loader"), "pretrained_tags": pretrained_tags(snap.arch),
    }
    if error is not None and loaded.get("stage") != "verify" and (reason := meta_limitation(error)):
        raise NotApplicable(f"not checkable on the meta device: {reason}")
    if error is not None and "absent" in str(error) and loaded.get("stage") == "verify":
        # The pickle cache is the suite's own input: a missing one is the harness's problem, never a pass.
        raise RuntimeError(f"{error} (generate it: python fixtures/cross_version/generate.py --pickles-only "
                           f"--producer {snap.producers[0]})")
    evidence = from_exception(error) if error is not None else Evidence()
    evidence.missing_keys = sorted(set(evidence.missing_keys) | set(loaded.get("missing_keys") or []))
    evidence.unexpected_keys = sorted(set(evidence.unexpected_keys) | set(loaded.get("unexpected_keys") or []))
    seen = {k for k, *_ in evidence.shape_mismatches}
    evidence.shape_mismatches += [tuple(s) for s in loaded.get("shape_mismatches") or [] if s[0] not in seen]
    evidence.extra.update(extra)
    return evidence


@cache
def pretrained_tags(arch: str) -> int:
    """How many published weights (`timm.list_pretrained('<arch>.*')`) an architecture's break reaches."""
    import timm

    return len(timm.list_pretrained(f"{arch}.*"))


# The repro starts where a user starts: the older release writes the file with real tensors (installed into
# its own folder with pip, run in a child process), and the installed releases load it.
REPRO = '''
spec = {spec!r}
folder = tempfile.mkdtemp(dir=WORKDIR)
write_with_release(spec, folder)
loaded = cross_version_load(spec, folder)
FOUND["state"] = {{"missing": [], "unexpected": [], "shape": [], "dtype": [], "values": [],
                  "reported_missing": list(loaded.get("missing_keys") or []),
                  "reported_unexpected": list(loaded.get("unexpected_keys") or []),
                  "reported_shape": list(loaded.get("shape_mismatches") or [])}}
FOUND["state"]["shape"] = FOUND["state"].pop("reported_shape")
print("loaded by", loaded.get("loader"), "at stage", loaded.get("stage"))
problems = {{k: v[:10] for k, v in FOUND["state"].items() if v}}
print("problems:", problems)
if loaded.get("error") is not None:
    raise loaded["error"]  # the load itself fails under the installed releases
assert not problems, "the installed releases do not load what the older release wrote"
print("OK: the older release's file loads")
{conclude}'''


def write_with_release(spec, folder):
    """Have the older release write the cell's file into `folder`, with real (random) weights: its packages are
    installed once into their own folder with pip, and a child process imports them ahead of the installed ones.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import os
    import subprocess
    import sys

    target = os.path.join(os.path.expanduser("~"), ".cache", "timm-compat", "producers", spec["kwargs"]["cv_release"])
    packages = spec["kwargs"]["cv_packages"]
    stamp = os.path.join(target, ".installed")
    if not (os.path.exists(stamp) and open(stamp).read() == " ".join(packages)):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", target,
                        *packages], check=True)
        with open(stamp, "w") as f:
            f.write(" ".join(packages))
    child = r"""
import json, os, sys
import timm, torch
arch, kind, folder = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
model = timm.create_model(arch, pretrained=False, **({"num_classes": 0} if kind == "headless" else {})).eval()
if kind == "pickle":
    torch.save(model, os.path.join(folder, "model.pt"))
elif kind in ("state_dict", "headless"):
    torch.save(model.state_dict(), os.path.join(folder, "checkpoint.pth"))
elif kind == "hub":
    from timm.models._hub import save_for_hf
    save_for_hf(model, folder)
else:
    from timm.models._hub import save_for_hf
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification
    save_for_hf(model, folder + ".hub")
    wrapper = TimmWrapperForImageClassification(TimmWrapperConfig.from_pretrained(folder + ".hub"))
    wrapper.timm_model.load_state_dict(model.state_dict())
    wrapper.save_pretrained(folder)
print("written by", json.dumps({"timm": timm.__version__}))
"""
    env = dict(os.environ, PYTHONPATH=target, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    subprocess.run([sys.executable, "-c", child, spec["name"], spec["kwargs"]["cv_kind"], folder], env=env, check=True)


PATH = LoadingPath(
    name="cross_version",
    summary="what older timm/transformers releases wrote (fixtures/cross_version/) -> loaded by the installed ones",
    roundtrip=cross_version_roundtrip,
    helpers=(recording_loads, at_least_version, cross_version_load, write_with_release),
    requires=_requires,
    overrides=cross_version_overrides,
    applies=cross_version_applies,
    source_kwargs=lambda override: {},
    check=Check(cross_version_judge, structure=cross_version_judge, repro=REPRO),
    default=False,
    sampled=False,
    builds_source=False,
    structural=True,
    structural_default=False,
    structural_cells=cross_version_overrides,
)
