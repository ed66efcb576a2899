"""Repros of adapted cells (pretrained_file, foreign) hold the load to `adapted_state`, not to bit-equality
with the plain source: a faithful adapted load prints OK, a loader that skips the adaptation fails naming
the tensor. Each script runs in a plain Python process."""

from compat_tests.core.versions import installed
from compat_tests.judge.adapted import ADAPTED
from compat_tests.paths import all_paths
from compat_tests.paths.base import LoadingPath
from compat_tests.repro.script import script
from tests.test_repro import run_script


def no_adapt_roundtrip(model, workdir, spec):
    """A loader with a real bug: it cannot fit the 3-channel stem into an in_chans=1 model, so it leaves that
    tensor out and loads non-strictly, saying nothing."""
    import timm

    state = {k: v for k, v in model.state_dict().items() if k != "patch_embed.proj.weight"}
    loaded = timm.create_model(spec["name"], pretrained=False, **spec["kwargs"])
    loaded.load_state_dict(state, strict=False)
    return {"model": loaded.eval(), "kwargs": spec["kwargs"]}


def _spec(**kwargs):
    return {"name": "test_vit2", "kwargs": kwargs, "seed": 0, "source_kwargs": {}}


def test_a_faithful_adapted_load_repro_says_ok(tmp_path, vit_ls):
    path = all_paths()["pretrained_file"]
    text = script("test_vit2-pretrained_file-in_chans_1", path, _spec(in_chans=1), vit_ls.input_size, installed())
    assert "compat_tests" not in text and "def adapted_state" in text
    proc = run_script(tmp_path, text)
    assert proc.returncode == 0 and "OK: loaded faithfully" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "'patch_embed.proj.weight': 'in_chans'" in proc.stdout  # held to the adapted kernel, not the source's


def test_a_loader_skipping_the_adaptation_repro_fails_naming_the_tensor(tmp_path, vit_ls):
    path = LoadingPath(name="faulty", summary="skips adapt_input_conv", roundtrip=no_adapt_roundtrip,
                       source_kwargs=lambda o: {}, check=ADAPTED)
    proc = run_script(tmp_path, script("test_vit2-faulty-in_chans_1", path, _spec(in_chans=1), vit_ls.input_size,
                                       installed()))
    assert proc.returncode != 0
    assert "'values': [('patch_embed.proj.weight'" in proc.stdout and "not faithful" in proc.stderr
