"""Adapted loads: a checkpoint loaded with an override (another head, channel count, image or patch size) is
held to `expected.adapted_state` of it, and reproduced by a template that does the same in plain Python."""

from __future__ import annotations

from typing import Any

import torch

from ..core.evidence import Evidence, NotApplicable, said
from ..source.models import BUILD_SOURCE, SourceModel, is_constant, make_input
from .check import Check
from .expected import adapted_state, input_size_for, resample_settings, rightly_fresh
from .oracle import diff_state, nonpersistent_buffers, outputs_against, state_evidence


def judge_adapted(source: SourceModel, loaded: dict[str, Any]) -> Evidence:
    """Hold a load to `adapted_state`: untouched tensors bit-equal, adapted ones equal timm's helpers'
    result, a changed head dropped (and nothing else), outputs equal a normal build holding the
    expected weights, output shape what the override asks for."""
    import timm

    module: torch.nn.Module = loaded["model"]
    kwargs = dict(loaded.get("kwargs") or {})
    torch.manual_seed(source.seed)
    reference = timm.create_model(source.name, pretrained=False, **kwargs).eval()
    checkpoint = loaded.get("checkpoint_timm") or source.model.state_dict()
    expected, fresh, adapted = adapted_state(checkpoint, source.model, reference,
                                             lambda: resample_settings(source.name, loaded))
    absent = [k for k, v in expected.items() if v is None]
    expected = {k: v for k, v in expected.items() if v is not None}
    actual = module.state_dict()
    report = diff_state(expected, {k: v for k, v in actual.items() if k not in fresh})
    # What the loader reported is not added: a dropped head is rightly "missing" to it.
    evidence = state_evidence(report, also_missing=[*absent, *(k for k in fresh if k not in actual)])
    # Differing tensors still at the constant a normal build gives them (the repro's `left_at_init`): a loader that
    # dropped keys without a word (load_pretrained loads non-strict when it changes the head) reinitialised them.
    initial = reference.state_dict()
    evidence.at_init = [k for k, _ in report["values"] if k in initial and is_constant(initial[k])
                        and initial[k].shape == actual[k].shape and torch.equal(actual[k].detach().cpu(), initial[k])]
    src_state = source.model.state_dict()
    kept = [k for k in fresh if k in actual and k in src_state and actual[k].shape == src_state[k].shape
            and torch.equal(actual[k].detach().cpu(), src_state[k])]
    evidence.extra = {"adapted": adapted, "fresh": fresh, "classifier_kept": kept, "override": kwargs}
    ref_buffers = nonpersistent_buffers(reference)
    rebuilt = diff_state(ref_buffers, nonpersistent_buffers(module))
    evidence.buffer_mismatches = [k for k, *_ in rebuilt["shape"] + rebuilt["values"]]
    if evidence.missing_keys or evidence.shape_mismatches:
        return evidence  # the reference below could not hold the expected weights
    # A normal build holding the expected weights (and the loaded model's fresh head) is the output oracle.
    reference.load_state_dict({**expected, **{k: actual[k] for k in fresh}}, strict=True)
    x = make_input(input_size_for(source.input_size, kwargs), source.seed, 1)
    module.eval()
    try:
        with torch.no_grad():
            want = reference(x)
    except Exception as error:  # e.g. timm 0.9's Swin merging an odd grid that patch_size=8 makes
        raise NotApplicable(f"a normal build with {kwargs} cannot run forward here: {said(error)}") from error
    return outputs_against(evidence, reference, want, loaded, x)


# Repro PREPARE for adapted loads (Check.repro_prepare): the plain source is saved and loaded with
# the override, and the loaded model is held to `adapted_state` of the checkpoint, as `judge_adapted` does.
# CHECKPOINT is replaced per path by the expression giving the checkpoint in timm's layout.
_ADAPTED_PREPARE = BUILD_SOURCE + '''
loaded = {roundtrip}(source, tempfile.mkdtemp(dir=WORKDIR), spec)  # an exception here is the failure
kwargs = loaded["kwargs"]
torch.manual_seed(spec["seed"])
target = timm.create_model(spec["name"], pretrained=False, **kwargs).eval()  # a normal build with the override
expected_model = target  # whose computed buffers (as built, before a forward) and layer settings the load must have
expected_buffers = {{k: b.clone() for k, b in nonpersistent_buffers(target).items()}}
checkpoint = CHECKPOINT
expected_state, fresh, adapted = adapted_state(checkpoint, source, target,
                                               lambda: resample_settings(spec["name"], loaded))
print("adapted by timm's helpers:", adapted, "| rightly fresh (not compared):", fresh)
actual = loaded["model"].state_dict()
absent = [k for k, v in expected_state.items() if v is None]  # the checkpoint has nothing for them
loaded["missing_keys"] = list(loaded.get("missing_keys") or []) + absent
expected_state = {{k: v for k, v in expected_state.items() if v is not None}}
source_state = source.state_dict()
kept = [k for k in fresh if k in actual and k in source_state and actual[k].shape == source_state[k].shape
        and torch.equal(actual[k], source_state[k])]
if kept:
    print("the source's head survived a class-count change:", kept)  # left out below, so CHECK names them
FOUND["adapted"] = {{"adapted": adapted, "fresh": fresh, "kept": kept, "kwargs": kwargs}}
expected_state.update({{k: actual[k] for k in fresh if k in actual and k not in kept}})
target_state = target.state_dict()
target.load_state_dict({{k: v for k, v in expected_state.items()
                        if k in target_state and v.shape == target_state[k].shape}}, strict=False)
chans, *side = {input_size!r}
if "img_size" in kwargs:
    side = [kwargs["img_size"]] * 2 if isinstance(kwargs["img_size"], int) else list(kwargs["img_size"])
x = make_input((int(kwargs.get("in_chans", chans)), *side), spec["seed"], 1)
with torch.no_grad():
    reference = target(x)
'''


def adapted_repro_prepare(checkpoint: str = "source.state_dict()") -> str:
    """The PREPARE template for a path whose cells are judged by `judge_adapted`; `checkpoint` is a Python
    expression (over `source`, `loaded`) for the checkpoint in timm's layout."""
    return _ADAPTED_PREPARE.replace("CHECKPOINT", checkpoint)


# pretrained_file and load_checkpoint: the checkpoint is the plain source's own state.
ADAPTED = Check(judge_adapted, (adapted_state, rightly_fresh, resample_settings), adapted_repro_prepare())
