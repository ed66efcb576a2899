"""Each tox env tests what its name says: its pins resolve to the releases it promises in TIMM_COMPAT_EXPECT,
and the matrix refuses to start when the installed releases drift from that promise.

The envs' settings are read from tox itself (`tox config`), not copied here, and each released env's dependency
set is resolved the way tox installs it, in two steps, each under the env's constraints file: its deps, then the
package's own dependencies (`pip install --dry-run --report`, nothing installed). No torch wheel is downloaded:
here torch is a file of this machine's wheel store, read in place; on CI it is in pip's cache from the selftest
env's own torch==2.14.1, and a dry run needs only a wheel's metadata (PEP 658) and returns before fetching wheels.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from compat_tests.run.environment import EXPECT_VAR, GIT_MAIN, drift, installed, parse

REPO = Path(__file__).resolve().parent.parent
ENVS = ("compat", "compat-oldest", "compat-main")
RELEASED = ("compat", "compat-oldest")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


@cache
def _tox_config() -> dict[str, dict[str, str]]:
    tox = shutil.which("tox")
    if tox is None:
        pytest.skip("tox is not installed: the envs' settings are read from tox itself")
    # Inside `tox -e selftest` tox's own variables describe the selftest env; the nested tox must not see them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOX")}
    proc = subprocess.run([tox, "config", "-c", str(REPO / "tox.ini"), "-e", ",".join(ENVS),
                           "-k", "deps", "set_env", "constraints"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.read_string(proc.stdout)
    return {env: dict(parser[f"testenv:{env}"]) for env in ENVS}


def deps(env: str) -> list[str]:
    return _lines(_tox_config()[env]["deps"])


def set_env(env: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in _lines(_tox_config()[env]["set_env"]))


def constraints(env: str) -> list[Path]:
    return [Path(line) for line in _lines(_tox_config()[env]["constraints"])]


def promise(env: str) -> dict[str, str]:
    assert EXPECT_VAR in set_env(env), f"tox env {env} states no {EXPECT_VAR}"
    return parse(set_env(env)[EXPECT_VAR])


def pins(env: str) -> dict[str, Requirement]:
    found = {}
    for file in constraints(env):
        for line in _lines(file.read_text(encoding="utf-8")):
            if not line.startswith("#"):
                req = Requirement(line)
                found[canonicalize_name(req.name)] = req
    return found


@pytest.mark.parametrize("env", ENVS)
def test_every_compat_env_pins_what_it_promises_in_its_own_constraints_file(env):
    assert [file.name for file in constraints(env)] == [f"{env}.txt"], "one constraints file per env"
    assert all(file.is_file() for file in constraints(env))
    expected, pinned = promise(env), pins(env)
    assert set(expected) == {"timm", "transformers"}
    for name, value in expected.items():
        assert name in pinned, f"{env} promises {name} but its constraints leave it free to move"
        if value == GIT_MAIN:
            assert pinned[name].url and pinned[name].url.startswith("git+"), pinned[name]
        else:
            assert str(pinned[name].specifier) == f"=={value}", (env, str(pinned[name]))
    # torch is this machine's wheel in every env: the same pin as the shared deps.
    assert {str(pinned[n]) for n in ("torch", "torchvision")} <= set(deps(env))


def resolve(env: str, step: str, tmp_path: Path) -> dict[str, str]:
    """The releases one of tox's two installs into ENV picks, from scratch, under the env's constraints: `deps`
    (the env's deps) or `package` (the package's own dependencies, installed afterwards: the step that once
    replaced compat-oldest's timm 0.9.16, pinned only in deps, with the newest release)."""
    report = tmp_path / f"{env}-{step}.json"
    wanted = deps(env) if step == "deps" else [str(REPO)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
           "--report", str(report), *wanted, *(f"--constraint={file}" for file in constraints(env))]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


@pytest.mark.parametrize("env", RELEASED)
def test_a_released_env_resolves_to_the_releases_it_promises(env, tmp_path):
    package = resolve(env, "package", tmp_path)
    assert "timm-compat" in package
    for name, version in promise(env).items():
        assert package.get(name) == version, f"tox -e {env} would install {name} {package.get(name)}, " \
                                             f"not the {version} it promises"
    # The foreign path's writer is installed too, at a release that accepts the env's timm instead of moving it.
    assert package.get("open-clip-torch") == str(pins(env)["open-clip-torch"].specifier).removeprefix("==")
    first = resolve(env, "deps", tmp_path)
    assert first["torch"] == package["torch"] == "2.14.1"
    assert all(first[name] == package[name] for name in first.keys() & package.keys()), \
        "tox's second install would change a release its first installed"


def test_compat_main_installs_both_libraries_from_their_main_branches():
    expected = promise("compat-main")
    assert expected == {"timm": GIT_MAIN, "transformers": GIT_MAIN}
    urls = {canonicalize_name(r.name): r.url for r in map(Requirement, deps("compat-main")) if r.url}
    for name in expected:
        url = urls.get(name)
        assert url and url.startswith("git+https://github.com/"), f"compat-main installs {name} from {url}"
        assert "@" not in url.removeprefix("git+https://"), f"{name} from a pinned revision, not main: {url}"
        assert pins("compat-main")[name].url == url, "deps and constraints name the same branch"


# drift(): the check itself, against real installed distributions.

def test_no_promise_or_a_kept_one_is_no_drift():
    timm, transformers = metadata.version("timm"), metadata.version("transformers")
    assert drift({}) is None and drift({EXPECT_VAR: " "}) is None
    assert drift({EXPECT_VAR: f"timm=={timm}, transformers=={transformers}"}) is None


def test_a_moved_release_is_one_line_naming_the_env_the_promise_and_what_is_installed():
    timm = metadata.version("timm")
    line = drift({EXPECT_VAR: "timm==0.9.16,transformers==" + metadata.version("transformers"),
                  "TOX_ENV_NAME": "compat-oldest"})
    assert line is not None and "\n" not in line
    assert line.startswith(f"tox env compat-oldest promises timm==0.9.16 but timm {timm} is installed")
    assert "transformers" not in line, "only what drifted is named"
    assert "tox -r -e compat-oldest" in line and "constraints/compat-oldest.txt" in line
    both = drift({EXPECT_VAR: "timm==0.9.16,transformers==0.1,no_such.dist==1.0"})
    assert f"but timm {timm} and transformers {metadata.version('transformers')} are installed and no-such-dist " \
           "is not installed:" in both


@pytest.mark.parametrize("bad", ["timm>=1.0", "timm==", "timm==latest", ",,"])
def test_a_malformed_promise_is_drift_too(bad):
    line = drift({EXPECT_VAR: bad})
    assert line and line.startswith(f"{EXPECT_VAR}: ") and "\n" not in line


def _pip_target(target: Path, spec: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), spec],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_git_main_means_installed_from_a_git_branch_head_not_a_release_or_another_revision(tmp_path):
    """Real installs by pip of a real git repository: PEP 610's direct_url.json is what tells them apart."""
    repo = tmp_path / "repo"
    (repo / "probe_dist").mkdir(parents=True)
    (repo / "probe_dist" / "__init__.py").write_text("")
    (repo / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                         'build-backend = "setuptools.build_meta"\n'
                                         '[project]\nname = "probe-dist"\nversion = "0.1"\n')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "probe"], ["tag", "v0.1"]):
        subprocess.run(git + args, check=True, capture_output=True)
    url = f"git+{repo.as_uri()}"
    head, tagged, release = tmp_path / "head", tmp_path / "tagged", tmp_path / "release"
    _pip_target(head, f"probe-dist @ {url}")
    _pip_target(tagged, f"probe-dist @ {url}@v0.1")
    _pip_target(release, str(repo))

    promise_main = {EXPECT_VAR: f"probe-dist=={GIT_MAIN}", "TOX_ENV_NAME": "compat-main"}
    assert installed("probe_dist", [str(head)]) == GIT_MAIN
    assert drift(promise_main, [str(head)]) is None
    assert installed("probe-dist", [str(tagged)]) == "0.1 from git v0.1"
    assert "but probe-dist 0.1 from git v0.1 is installed" in drift(promise_main, [str(tagged)])
    assert "but probe-dist 0.1 is installed" in drift(promise_main, [str(release)])
    # A release promise is not kept by a git install of the same version.
    assert drift({EXPECT_VAR: "probe-dist==0.1"}, [str(release)]) is None
    assert "probe-dist from git main is installed" in drift({EXPECT_VAR: "probe-dist==0.1"}, [str(head)])


# The plugin: a matrix run refuses to start on drift; the suite's own tests are not affected.

def _pytest(tmp_path: Path, expect: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", EXPECT_VAR: expect, "TOX_ENV_NAME": "compat-oldest"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_matrix_run_on_drifted_releases_refuses_to_start_with_one_line_and_no_report(tmp_path):
    reports = tmp_path / "reports"
    proc = _pytest(tmp_path, "timm==0.0.1", "compat_tests", "--models", "test_vit2", "--paths", "create_model",
                   "--report-dir", str(reports))
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    timm = metadata.version("timm")
    assert errors == [f"ERROR: tox env compat-oldest promises timm==0.0.1 but timm {timm} is installed: the run "
                      "would not test what it says; rebuild it with `tox -r -e compat-oldest` "
                      "(pins: constraints/compat-oldest.txt)"], proc.stderr
    assert "collected" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert not reports.exists() or not any(reports.iterdir()), "nothing is recorded for a run that never started"


def test_kept_promises_let_the_matrix_start_and_selftests_never_check_them(tmp_path):
    kept = _pytest(tmp_path, f"timm=={metadata.version('timm')}", "compat_tests", "--models", "test_vit2",
                   "--paths", "create_model", "--report-dir", str(tmp_path / "r"), "--collect-only", "-q")
    assert kept.returncode == 0 and "test_vit2-create_model-base" in kept.stdout, kept.stdout[-2000:]
    selftest = _pytest(tmp_path, "timm==0.0.1", "tests/test_layout.py", "--collect-only", "-q")
    assert selftest.returncode == 0 and "test_the_readme_map_is_the_tree" in selftest.stdout, selftest.stderr
