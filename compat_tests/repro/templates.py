"""The generic repro templates (str.format templates over spec, input_size, batch, roundtrip, rtol, conclude):
build the source, save and load it through the cell's roundtrip, then check what the oracle checks; and the
verdict a repro of a failure ends with, which checks the one fact the failure's signature names.

Every template records what it sees in `FOUND` (a dict the script defines before them): "state" (the
diff_state/diff_structure report), "buffers" (computed buffers that differ from a normal build's), "output"
(compare_outputs), "at_init", "module_differences", "adapted" and, from a path's own check, "export_failure"
and "unfused_exports". The verdict reads it, and the exception when one escapes ("error").
"""

from __future__ import annotations

import torch

from ..source.models import BUILD_SOURCE

# Builds the source, saves and loads it; leaves `x`, `reference`, `expected_state`, `loaded`, and the model whose
# computed (non-persistent) buffers and layer settings the loaded one must have, `expected_model` with
# `expected_buffers` as it was built. A kind of judging whose expectation is not the source itself supplies its
# own (judge.check.Check.repro_prepare); one whose judge does not compare buffers sets `expected_buffers = None`.
PREPARE = BUILD_SOURCE + '''
expected_model = source
expected_buffers = {{k: b.clone() for k, b in nonpersistent_buffers(source).items()}}  # as built, before a forward
x = make_input({input_size!r}, spec["seed"], {batch})
with torch.no_grad():
    reference = source(x)
expected_state = source.state_dict()

loaded = {roundtrip}(source, tempfile.mkdtemp(dir=WORKDIR), spec)  # an exception here is the failure
'''

CHECK = '''
model = loaded["model"]
actual = model.state_dict()
report = diff_state(expected_state, actual)
report["reported_missing"] = list(loaded.get("missing_keys") or [])
report["reported_unexpected"] = list(loaded.get("unexpected_keys") or [])
FOUND["state"] = report
if report["values"]:  # which of them a load left at their initial constant, saying nothing
    FOUND["at_init"] = left_at_init(spec, loaded.get("kwargs") or spec["source_kwargs"], actual,
                                    [k for k, _ in report["values"]])
if expected_buffers is not None:  # as built, before the loaded model runs
    built = diff_state(expected_buffers, nonpersistent_buffers(model, actual))
    FOUND["buffers"] = [k for k, *_ in built["shape"] + built["values"]]
forward = loaded.get("forward") or model.eval()
with torch.no_grad():
    output = compare_outputs(reference, forward(x), {rtol})
FOUND.setdefault("output", output)  # a path's own check (fused vs unfused) records the comparison that judges it
if FOUND.get("buffers"):
    # Again after both ran the same input: a placeholder the forward recomputes is a cache, not a buffer the load
    # failed to rebuild.
    after = diff_state(nonpersistent_buffers(expected_model), nonpersistent_buffers(model))
    still = {{k for k, *_ in after["shape"] + after["values"]}} | set(after["missing"]) | set(after["unexpected"])
    FOUND["buffers"] = [k for k in FOUND["buffers"] if k in still]
if not output["ok"] and expected_model is not None:
    FOUND["module_differences"] = module_differences(expected_model, model)
problems = {{k: v[:10] for k, v in report.items() if v}}
if FOUND.get("buffers"):
    problems["computed buffers unlike a normal build's"] = FOUND["buffers"][:10]
print("problems:", problems)
print("output:", output)
assert not problems and output["ok"], "the load is not faithful to the saved model"
print("OK: loaded faithfully")
{conclude}'''

# A structural cell: source and load on the meta device (keys, shapes, dtypes; no values). The suite skips
# value initialisers on meta to go faster; plain torch.device("meta") gives the same structure. Where this
# release's constructors read values (timm <= 1.0.15's drop-path schedules) plain meta cannot build the model, and
# the repro builds it on the CPU: the same keys, shapes and dtypes, with values.
PREPARE_META = '''
spec = {spec!r}
with torch.device("{device}"):
    source = timm.create_model(spec["name"], pretrained=False, **spec["source_kwargs"]).eval()
    expected_state = source.state_dict()
    with CopyTargets() as copies:  # what the load writes: on meta, the only trace it leaves
        loaded = {roundtrip}(source, tempfile.mkdtemp(dir=WORKDIR), spec)  # an exception here is the failure
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
FOUND["state"] = report
problems = {{k: v[:10] for k, v in report.items() if v}}
if {into_build}:  # a model built only to be loaded into: a tensor no copy reached kept its initial value
    FOUND["at_init"] = unwritten(loaded["model"].state_dict(keep_vars=True), copies.written,
                                 rightly_fresh(source, loaded["model"]))
    if FOUND["at_init"]:
        problems["never written by the load"] = FOUND["at_init"][:10]
print("problems:", problems)
assert not problems, "the load does not keep the saved model's keys, shapes and dtypes"
print("OK: keys, shapes and dtypes survive the load")
{conclude}'''

# The top of every repro, before anything imports timm or transformers, which read these settings once: a repro
# loads only files it writes itself, so it never asks the hub, and its output is what it prints (no progress bars).
ENVIRONMENT = """import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
import atexit
import shutil
import sys
import tempfile

# Every file the repro writes goes under WORKDIR, removed when the script ends. A watched child (see
# watch_in_child) writes into its parent's, since the parent outlives it even when the child is killed.
WORKDIR = os.environ.get("TIMM_COMPAT_REPRO_DIR")
if not WORKDIR:
    WORKDIR = os.environ["TIMM_COMPAT_REPRO_DIR"] = tempfile.mkdtemp(prefix=f"timm-compat-{os.getpid()}-repro-")
    atexit.register(shutil.rmtree, WORKDIR, True)
"""

IMPORTS = "\nimport timm\nimport torch\n"

# The failure a repro reproduces (a str.format template over `expected`, the cell's signature and its family).
EXPECT = '''# The failure the suite recorded for this cell. The last line of the output says whether it happens here:
# "timm-compat: reproduced <signature>" (exit status 1), or "timm-compat: NOT reproduced: <signature>: <what was
# seen instead>" (exit status 0 when the load is faithful here, 1 when it fails in another way).
EXPECTED = {expected!r}
'''

# What the script observes as it runs, read by the verdict: printed last, from the hook when an exception
# escapes, else by CONCLUDE at the end.
OBSERVE = "FOUND = {}\nsys.excepthook = verdict_hook(EXPECTED, FOUND)\n"
CONCLUDE = "sys.exit(announce(EXPECTED, FOUND))\n"

# Without a recorded failure (a repro generated for a passing cell) there is no verdict: `FOUND` only collects.
NO_VERDICT = "FOUND = {}\n"

# A cell whose process died or hung: this process only watches a child that runs the cell (template over
# `limit_s`), so it comes before the heavy imports.
WATCH = '''# The time the matrix gave the cell (pytest --timeout); `python repro.py SECONDS` gives another.
LIMIT_S = float(sys.argv[1]) if len(sys.argv) > 1 else {limit_s!r}
EXPECTED = watch_in_child(EXPECTED, LIMIT_S)  # returns only in the child, which runs the cell with no verdict
'''


class CopyTargets(torch.overrides.TorchFunctionMode):
    """While active, records the tensors a `copy_` writes into: load_state_dict's `param.copy_(value)`, the only
    trace a load leaves on the meta device.

    Standalone on purpose: structural repro scripts embed this class's source verbatim.
    """

    def __init__(self):
        super().__init__()
        self.targets = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is torch.Tensor.copy_:
            self.targets[id(args[0])] = args[0]  # held, so that no other tensor takes its id
        return result

    def written(self, tensor):
        return self.targets.get(id(tensor)) is tensor


def left_at_init(spec, kwargs, actual, keys):
    """Of `keys`, those whose loaded tensor still holds the one constant its initialiser gives (LayerScale's gamma,
    a zero bias): a fresh build with the source's seed shows it.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import timm
    import torch

    torch.manual_seed(spec["seed"])
    initial = timm.create_model(spec["name"], pretrained=False, **kwargs).state_dict()
    found = []
    for key in keys:
        value = initial.get(key)
        if value is None or not value.is_floating_point() or value.numel() <= 1 or value.shape != actual[key].shape:
            continue
        if bool((value == value.flatten()[0]).all()) and torch.equal(actual[key].detach().cpu(), value):
            found.append(key)
    return found


def keys_seen(found):
    """The keys a load got wrong: the state comparison's, the loader's own report's, and those a strict
    load_state_dict named in the error it raised (`raised_shape`: key, checkpoint shape, model shape).

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import re

    state = found.get("state") or {}
    seen = {"missing": [*state.get("missing", []), *state.get("reported_missing", [])],
            "unexpected": [*state.get("unexpected", []), *state.get("reported_unexpected", [])],
            "shape": list(state.get("shape", [])), "dtype": list(state.get("dtype", [])),
            "values": list(state.get("values", [])), "raised_shape": []}
    text = str(found.get("error") or "")
    for line in text.splitlines():
        for field, label in (("missing", "Missing"), ("unexpected", "Unexpected")):
            if m := re.search(label + r" key\(s\) in state_dict: (.*)", line):
                seen[field] += re.findall(r'"([^"]+)"', m.group(1))
    size = (r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from checkpoint, "
            r"the shape in current model is torch\.Size\(\[([\d, ]*)\]\)")
    for key, saved, model in re.findall(size, text):
        seen["raised_shape"].append((key, [int(n) for n in saved.replace(" ", "").split(",") if n],
                                     [int(n) for n in model.replace(" ", "").split(",") if n]))
    seen["shape"] += seen["raised_shape"]
    seen["missing"], seen["unexpected"] = list(dict.fromkeys(seen["missing"])), list(dict.fromkeys(seen["unexpected"]))
    return seen


def key_renames(missing, unexpected):
    """The systematic renames that turn unexpected keys into missing ones, (old head, new head, how many keys),
    most first: each missing key paired with the unexpected key sharing its layer numbers and the longest dotted
    tail; sharing only the leaf ("weight") counts when the rest looks alike (`conv_dw` -> `dwconv`) or one side
    is empty (a prefix), as the suite's detector (signatures/renames.py) reads it.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import re
    from difflib import SequenceMatcher

    def numbers(key):
        return re.findall(r"(?:^|\.)(\d+)(?=\.)", key)

    def alike(a, b, tail):
        head_a, head_b = ".".join(a[: len(a) - tail]), ".".join(b[: len(b) - tail])
        return not head_a or not head_b or SequenceMatcher(None, head_a, head_b).ratio() >= 0.4

    renames, pool = {}, list(unexpected)
    for key in missing:
        best, best_tail = None, 0
        for other in pool:
            a, b, tail = other.split("."), key.split("."), 0
            while tail < min(len(a), len(b)) and a[-1 - tail] == b[-1 - tail]:
                tail += 1
            if tail > best_tail and numbers(other) == numbers(key) and (tail > 1 or alike(a, b, tail)):
                best, best_tail = other, tail
        if best is None:
            continue
        pool.remove(best)
        while best_tail and best.split(".")[-best_tail].isdigit():  # a layer number stays in the rename
            best_tail -= 1
        heads = (".".join(k.split(".")[: len(k.split(".")) - best_tail]) for k in (best, key))
        rule = tuple(re.sub(r"(?:^|(?<=\.))\d+(?=\.|$)", "{i}", head) for head in heads)
        renames[rule] = renames.get(rule, 0) + 1
    def shown(head):
        return head + "." if head else "''"  # a prefix added or stripped

    return sorted(((shown(old), shown(new), n) for (old, new), n in renames.items()), key=lambda r: -r[2])


def adapted_misses(name, keys, found):
    """What an adapted load left unadapted, for the adapted-family signature `name`: shapes the load (or its
    raised error) shows, values unlike timm's helpers' result (`found["adapted"]`), a head that survived.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    adapting = found.get("adapted") or {}
    reasons = adapting.get("adapted") or {}
    if name == "input-conv-not-adapted":
        return [f"{k}: the checkpoint's kernel takes {a[1]} channels, the model's {b[1]}"
                for k, a, b in keys["raised_shape"] if len(a) == len(b) == 4 and
                [i for i in range(4) if a[i] != b[i]] == [1]] + \
            [f"{k}: {a} vs {b}" for k, a, b in keys["shape"] if "in_chans" in reasons.get(k, "")] + \
            [f"{k} is not adapt_input_conv of the source (max abs diff {d:.3g})" for k, d in keys["values"]
             if "in_chans" in reasons.get(k, "")]
    if name == "classifier-not-reset":
        hits = [f"{k}: checkpoint {a}, model {b}" for k, a, b in keys["raised_shape"]
                if k.endswith(".weight") and len(a) == len(b) == 2 and a[0] != b[0] and a[1:] == b[1:]]
        hits += [f"{k} still holds the source's head" for k in adapting.get("kept", [])]
        output, wanted = found.get("output"), (adapting.get("kwargs") or {}).get("num_classes")
        if output and wanted is not None and output["shape"] != output["expected_shape"]:
            hits.append(f"num_classes={wanted} asked, the model outputs {output['shape']}")
        return hits
    reason, suffix = {"patch-resample-skipped": ("patch", "patch_embed.proj.weight"),
                      "pos-embed-resample-skipped": ("pos", "pos_embed"),
                      "rel-pos-table-resize-skipped": ("rel_pos", "relative_position_bias_table")}[name]
    # a kernel off only in its input channels is the stem's adaptation, not a patch resample
    hits = [f"{k}: {label} {a}, the model needs {b}" for label, shapes in
            (("the load gave", [(k, b, a) for k, a, b in keys["shape"] if (k, a, b) not in keys["raised_shape"]]),
             ("the checkpoint gave", keys["raised_shape"]))
            for k, a, b in shapes if k.endswith(suffix) and (reason != "patch" or a[-2:] != b[-2:])]
    return hits + [f"{k}: right shape, not resampled (max abs diff {d:.3g})" for k, d in keys["values"]
                   if k.endswith(suffix) and reason in reasons.get(k, "")]


def signature_holds(expected, found):
    """(whether this run shows the failure `expected` names, what it showed), read from `found` the way the
    suite's detector for that signature reads a cell's evidence, by family of signatures.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import re

    name, family, error = expected["signature"], expected["family"], found.get("error")
    raised = "nothing raised" if error is None else \
        f"raised {type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"

    def answer(hits, what, otherwise):
        more = f" (+{len(hits) - 3} more)" if len(hits) > 3 else ""
        if not hits:
            return False, otherwise
        return True, f"{len(hits)} {what}: {', '.join(str(h) for h in hits[:3])}{more}"

    if family == "process":  # the parent of a watched child (watch_in_child)
        process = found["process"]
        if name == "timeout":
            if process.get("timed_out"):
                return True, f"still running after {process['limit_s']:g}s"
            return False, f"finished in {process['seconds']:.1f}s (exit status {process['returncode']})"
        code = process.get("returncode")
        if code is not None and code not in (0, 1):  # 0 and 1 are how a Python script itself ends
            return True, f"the process died ({f'killed by signal {-code}' if code < 0 else f'exit status {code}'})"
        return False, "the process did not die: " + (f"exit status {code}" if code is not None else "it timed out")
    if family == "raised":
        if error is None:
            return False, "nothing raised"
        if expected["type"] and type(error).__name__ != expected["type"]:
            return False, f"{raised}, not a {expected['type']}"
        if not re.search(expected["pattern"], str(error)):
            return False, f"{raised}, without {expected['pattern']!r} in its message"
        if "unfused" in expected:  # export-*: the exporter raised; does the model before fusing export?
            if found.get("export_failure") is None:
                return False, f"{raised} before the exporter ran"
            exports = found.get("unfused_exports") is True
            if exports != (expected["unfused"] == "exports"):
                return False, f"{raised}; the unfused model " + \
                    ("exports" if exports else f"fails too ({found.get('unfused_exports')})")
        return True, raised
    keys = keys_seen(found)
    missing, unexpected = keys["missing"], keys["unexpected"]
    if family == "keys":
        field = {"missing-keys": "missing", "unexpected-keys": "unexpected", "shape-mismatch": "shape",
                 "dtype-changed": "dtype", "old-checkpoint-keys-added": "missing",
                 "old-checkpoint-keys-removed": "unexpected", "old-checkpoint-shape-changed": "shape"}.get(name)
        if name == "old-checkpoint-left-unfilled":  # what a load that raised nothing did not fill, or dropped
            if error is not None:
                return False, f"the load does not pass silently: {raised}"
            return answer(missing + unexpected, "key(s) unfilled or dropped without an error", "every key filled")
        if field:
            return answer(keys[field], f"{field} key(s)", f"no {field} keys; {raised}")
        if name == "layerscale-gamma-renamed":
            renamed = [(k, k.replace(old, new)) for k in missing for old, new in (("gamma", "weight"), ("beta", "bias"))
                       if old in k and k.replace(old, new) in unexpected]
            return answer(renamed, "key(s) renamed", f"no gamma/beta key renamed; {raised}")
        prefixed = []
        for prefix in expected["prefixes"]:
            for have, want in (({prefix + k for k in missing}, set(unexpected)),
                               ({prefix + k for k in unexpected}, set(missing))):
                # torch fills BatchNorm's counter in itself, so a checkpoint may rightly lack it
                if have & want and all(k.endswith(".num_batches_tracked") for k in have ^ want):
                    prefixed.append(prefix)
        if name == "key-prefix-mismatch":
            return answer(prefixed, "prefix(es) off on every key",
                          f"no one prefix explains {len(missing)} missing, {len(unexpected)} unexpected keys; {raised}")
        if prefixed:  # key-layout-mismatch
            return False, f"the keys differ by the prefix {prefixed[0]!r}, not by a layout"
        renames = key_renames(missing, unexpected)
        if name == "old-checkpoint-keys-renamed":  # a module renamed whole, not a key or two that happen to pair
            renames = [r for r in renames if r[2] == sum(
                re.sub(r"(?:^|(?<=\.))\d+(?=\.|$)", "{i}", k).startswith(r[1]) for k in missing)]
        if sum(n for *_, n in renames) < 2:
            return False, f"no systematic rename among {len(missing)} missing, {len(unexpected)} unexpected keys; " \
                          + raised
        return answer([f"{old} -> {new} ({n} keys)" for old, new, n in renames],
                      f"rename(s) explain {sum(n for *_, n in renames)} of {len(missing)} missing keys", "")
    if family == "values":
        if name == "silent-reinit":
            if missing:
                return False, f"keys are reported missing ({', '.join(missing[:3])}): the reinit is not silent"
            return answer(found.get("at_init") or [], "tensor(s) still at their initial value",
                          f"no tensor left at its initial value; {raised}")
        return answer(sorted(keys["values"], key=lambda kv: -kv[1]), "tensor(s) differ (key, max abs diff)",
                      f"every tensor equal; {raised}")
    if family == "buffers":
        if "buffers" not in found:
            if error is not None and expected.get("pattern") and re.search(expected["pattern"], str(error)):
                return True, f"a computed tensor was left on the meta device: {raised}"
            return False, f"the script stopped before comparing computed buffers; {raised}"
        return answer(found["buffers"], "computed (non-persistent) buffer(s) unlike a normal build's",
                      "every computed buffer equals a normal build's")
    if family == "adapted":
        return answer(adapted_misses(name, keys, found), "tensor(s) not adapted to the override",
                      f"every adapted tensor is right; {raised}")
    output = found.get("output")
    if family == "outputs":
        if output is None:
            return False, f"no output was compared; {raised}"
        if output["ok"]:
            return False, f"outputs agree (max abs error {output.get('max_error', 0):.3g} <= {output['tolerance']:.3g})"
        if output["shape"] != output["expected_shape"]:
            detail = f"output shape {output['shape']}, expected {output['expected_shape']}"
        else:
            detail = f"max abs error {output['max_error']:.3g} > tolerance {output['tolerance']:.3g}"
        if name == "module-config-differs":
            return answer(found.get("module_differences") or [], f"layer(s) built with other settings ({detail})",
                          f"outputs differ ({detail}), yet every layer is built alike")
        off = missing + unexpected + [k for k, *_ in keys["shape"] + keys["values"]] + (found.get("buffers") or [])
        if off and name in ("output-mismatch", "legacy-output-mismatch"):
            return False, f"outputs differ ({detail}), but so do tensors or keys: {', '.join(map(str, off[:3]))}"
        return True, f"outputs differ: {detail}"
    # exception:<Type> is "raised"; anything the catalog does not name (unclassified): the load fails at all
    faithful = error is None and not any(keys[f] for f in ("missing", "unexpected", "shape", "dtype", "values")) \
        and (output is None or output["ok"])
    return (not faithful), ("the load is faithful" if faithful else raised)


def announce(expected, found):
    """Print the verdict on `expected` (None: a repro without a recorded failure, which has none) as the output's
    last line, and return the exit status: 1 when the failure happened here, else 0.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    if expected is None:
        return 0
    holds, seen = signature_holds(expected, found)
    name = expected["signature"]
    if holds:
        print(f"timm-compat: seen: {seen}")
        print(f"timm-compat: reproduced {name}", flush=True)
        return 1
    print(f"timm-compat: NOT reproduced: {name}: {seen}", flush=True)
    return 0


def verdict_hook(expected, found):
    """A sys.excepthook that prints the traceback as usual, then the verdict as the last line. What the libraries
    raised goes into `found["error"]`; the script's own failed assertion (raised in __main__) is not theirs.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import sys

    def hook(kind, error, tb):
        sys.stdout.flush()
        sys.__excepthook__(kind, error, tb)
        sys.stderr.flush()
        if not issubclass(kind, Exception):  # Ctrl-C is no verdict
            return
        last = tb
        while last is not None and last.tb_next is not None:
            last = last.tb_next
        own = isinstance(error, AssertionError) and last is not None \
            and last.tb_frame.f_globals.get("__name__") == "__main__"
        if not own:
            found["error"] = error
        announce(expected, found)

    return hook


def watch_in_child(expected, limit_s):
    """For a cell whose process died or ran out of time: run this same script in a child process and watch it.
    In that child, returns None (it runs the cell, with no verdict of its own); here, prints the verdict and exits.

    Standalone on purpose: repro scripts embed this function's source verbatim.
    """
    import os
    import subprocess
    import sys
    import time

    if os.environ.get("TIMM_COMPAT_REPRO_CHILD") == "1":
        return None
    if not os.path.isfile(sys.argv[0]):
        print("timm-compat: run this script as a file (python repro.py) to watch the cell in a child process")
        return None
    print(f"timm-compat: running the cell in a child process for up to {limit_s:g}s; the recorded failure is "
          f"{expected['signature']}", flush=True)
    started = time.monotonic()
    env = dict(os.environ, TIMM_COMPAT_REPRO_CHILD="1")
    try:
        done = subprocess.run([sys.executable, os.path.abspath(sys.argv[0])], env=env, timeout=limit_s)
        process = {"returncode": done.returncode, "seconds": time.monotonic() - started}
    except subprocess.TimeoutExpired:  # run() has killed the child
        process = {"returncode": None, "timed_out": True, "limit_s": limit_s}
    # As any repro: exit status 1 when the failure happened, or when the cell failed some other way.
    sys.exit(announce(expected, {"process": process}) or int(process["returncode"] != 0))
