"""The generic repro templates (str.format templates over spec, input_size, batch, roundtrip, rtol): build
the source, save and load it through the cell's roundtrip, then check what the oracle checks."""

from __future__ import annotations

from ..source.models import BUILD_SOURCE

# Builds the source, saves and loads it; leaves `x`, `reference`, `expected_state` and `loaded` behind.
# A kind of judging whose expectation is not the source itself supplies its own (judge.check.Check.repro_prepare).
PREPARE = BUILD_SOURCE + '''
x = make_input({input_size!r}, spec["seed"], {batch})
with torch.no_grad():
    reference = source(x)
expected_state = source.state_dict()

loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
'''

CHECK = '''
report = diff_state(expected_state, loaded["model"].state_dict())
report["reported_missing"] = list(loaded.get("missing_keys") or [])
report["reported_unexpected"] = list(loaded.get("unexpected_keys") or [])
forward = loaded.get("forward") or loaded["model"].eval()
with torch.no_grad():
    output = compare_outputs(reference, forward(x), {rtol})
problems = {{k: v[:10] for k, v in report.items() if v}}
print("problems:", problems)
print("output:", output)
assert not problems and output["ok"], "the load is not faithful to the saved model"
print("OK: loaded faithfully")
'''

# A structural cell: source and load on the meta device (keys, shapes, dtypes; no values). The suite skips
# value initialisers on meta to go faster; plain torch.device("meta") gives the same structure.
PREPARE_META = '''
spec = {spec!r}
with torch.device("meta"):
    source = timm.create_model(spec["name"], pretrained=False, **spec["source_kwargs"]).eval()
    expected_state = source.state_dict()
    loaded = {roundtrip}(source, tempfile.mkdtemp(), spec)  # an exception here is the failure
'''

# As oracle.judge_structure: a model built with an override defines its own shapes.
CHECK_META = '''
actual = loaded["model"].state_dict()
overridden = dict(loaded.get("kwargs") or spec["source_kwargs"]) != dict(spec["source_kwargs"])
expected = {{k: v for k, v in expected_state.items() if k in actual}} if overridden else expected_state
report = diff_structure(expected, actual, shapes=not overridden)
if overridden:
    report["unexpected"] = []
report["reported_missing"] = list(loaded.get("missing_keys") or [])
report["reported_unexpected"] = list(loaded.get("unexpected_keys") or [])
problems = {{k: v[:10] for k, v in report.items() if v}}
print("problems:", problems)
assert not problems, "the load does not keep the saved model's keys, shapes and dtypes"
print("OK: keys, shapes and dtypes survive the load")
'''
