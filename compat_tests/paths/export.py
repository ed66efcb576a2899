"""The deploy model through an exporter, one override (cell) per exporter, so one failing exporter hides
no other: `torch_export` (torch.export.export -> save/load .pt2 -> run), `jit` (built with timm's
`scriptable=True` layer config, as timm's own tests script models -> torch.jit.script -> save/load ->
run) and `onnx` (torch.onnx.export, torch's default dynamo exporter -> onnx.checker -> onnxruntime CPU).

The deploy model is `reparameterize_model(model)`: the fused model where there is something to fuse,
otherwise an unchanged copy, so every model gets cells. Export happens on the cell's seeded input
(static shapes) inside the returned `forward`, which lets the judge run the deploy model eagerly first.
The exporter rides in the override's kwargs (`exporter=...`); the source model is built without it.

Model bug or exporter limitation (details and tolerances in judge/reparam.py):
* the deploy model's eager forward raises -> the model's bug (`none-module-called`, ...), whatever the
  exporter would have done;
* the exporter raises (at its export, save, load, check, session or run stage) and the *unfused* model
  goes through the same exporter -> the fusion broke it: `export-broken-by-reparam:<exporter>`, a bug;
* both raise, or there was nothing to fuse -> `export-unsupported:<exporter>`: the exporter cannot handle
  the architecture, a limitation reported apart from loading failures;
* the export runs but its outputs differ from eager by more than EXPORT_RTOL x the output scale ->
  `export-mismatch:<exporter>`.
"""

from __future__ import annotations

from typing import Any

from ..core.scenario import Override
from ..judge.reparam import EXPORT
from ..signatures.deploy import EXPORTERS
from .base import LoadingPath

ORDER = 110


def export_roundtrip(model, workdir, spec):
    import os

    import timm
    import torch
    from timm.utils import reparameterize_model

    kwargs = dict(spec["kwargs"])
    exporter = kwargs.pop("exporter")
    unfused = model.eval()
    if exporter == "jit":  # what timm scripts: a model built with its scriptable layer config
        unfused = timm.create_model(spec["name"], pretrained=False, scriptable=True, **kwargs).eval()
        unfused.load_state_dict(model.state_dict(), strict=True)
    deploy = reparameterize_model(unfused)  # a plain copy when there is nothing to fuse
    stage = {"now": None}  # which step raised, for the judge

    def torch_export(net, x):
        stage["now"] = "export"
        program = torch.export.export(net, (x,))
        stage["now"] = "save"
        file = os.path.join(workdir, "model.pt2")
        torch.export.save(program, file)
        stage["now"] = "load"
        restored = torch.export.load(file)
        stage["now"] = "run"
        with torch.no_grad():
            return restored.module()(x)

    def jit(net, x):
        stage["now"] = "export"
        scripted = torch.jit.script(net)
        stage["now"] = "save"
        file = os.path.join(workdir, "model.torchscript")
        torch.jit.save(scripted, file)
        stage["now"] = "load"
        restored = torch.jit.load(file, map_location="cpu")
        stage["now"] = "run"
        with torch.no_grad():
            return restored(x)

    def onnx(net, x):
        import onnx
        import onnxruntime

        stage["now"] = "export"
        file = os.path.join(workdir, "model.onnx")
        # Weights stay inside the .onnx file unless protobuf's 2 GB limit forces external data.
        big = sum(p.numel() * p.element_size() for p in net.parameters()) > 1_500_000_000
        torch.onnx.export(net, (x,), file, dynamo=True, external_data=big, verbose=False)
        stage["now"] = "check"
        onnx.checker.check_model(file)
        stage["now"] = "session"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # share the worker's cores, as torch does
        session = onnxruntime.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        stage["now"] = "run"
        outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        return torch.from_numpy(outputs[0])

    run = {"torch_export": torch_export, "jit": jit, "onnx": onnx}[exporter]
    return {"model": deploy, "exporter": exporter, "stage": stage, "forward": lambda x: run(deploy, x),
            "unfused_forward": lambda x: run(unfused, x)}


def export_overrides(model_name: str) -> list[Override]:
    return [Override.of(exporter, exporter=exporter) for exporter in EXPORTERS]


def _source_kwargs(override: Override) -> dict[str, Any]:
    # The exporter selects the cell, not the model: the source is the shared, plain build.
    return {k: v for k, v in override.as_dict().items() if k != "exporter"}


PATH = LoadingPath(
    name="export",
    summary="reparameterize_model -> torch.export / torch.jit.script / torch.onnx+onnxruntime, vs eager",
    roundtrip=export_roundtrip,
    overrides=export_overrides,
    source_kwargs=_source_kwargs,
    check=EXPORT,
    # Three exporters for every model cost more than the rest of the smoke tier: opt in with --paths.
    default=False,
)
