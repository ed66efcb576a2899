"""Repro scripts run in a plain Python process, with only the libraries, and reach the same verdict."""

import os
import subprocess
import sys

from compat_tests.core.versions import installed
from compat_tests.paths import all_paths
from compat_tests.paths.base import LoadingPath
from compat_tests.repro.script import script


def drop_one_key_roundtrip(model, workdir, spec):
    """A loader with a real bug: it loses one key and loads non-strictly, saying nothing."""
    import timm

    state = dict(model.state_dict())
    state.pop("blocks.0.ls1.gamma")
    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    loaded.load_state_dict(state, strict=False)
    return {"model": loaded.eval()}


def run_script(tmp_path, text):
    file = tmp_path / "repro.py"
    file.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run([sys.executable, str(file)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    # Every file a repro writes (a model, gigabytes for a big one) is gone when it ends, failed or not.
    assert not list((tmp_path / "tmp").iterdir()), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


SPEC = {"name": "test_vit2", "kwargs": {}, "seed": 0, "source_kwargs": {}}


def test_a_faithful_path_repro_says_ok(tmp_path):
    text = script("test_vit2-state_dict-base", all_paths()["state_dict"], SPEC, (3, 160, 160), installed())
    assert "compat_tests" not in text, "repros must not need the harness"
    proc = run_script(tmp_path, text)
    assert proc.returncode == 0 and "OK: loaded faithfully" in proc.stdout, proc.stderr[-2000:]


def test_a_faulty_loader_repro_fails_naming_the_key(tmp_path):
    path = LoadingPath(name="faulty", summary="drops a key", roundtrip=drop_one_key_roundtrip)
    proc = run_script(tmp_path, script("test_vit2-faulty-base", path, SPEC, (3, 160, 160), installed()))
    assert proc.returncode != 0
    assert "blocks.0.ls1.gamma" in proc.stdout and "not faithful" in proc.stderr
