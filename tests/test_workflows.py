"""Both GitHub workflows pass actionlint (the selftest env installs it: see pyproject's selftest extra)."""

import shutil
import subprocess
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def actionlint(path: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("actionlint")
    assert binary, "actionlint is a selftest dependency; the env is incomplete without it"
    return subprocess.run([binary, "-no-color", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["ci.yml", "nightly.yml"])
def test_workflow_passes_actionlint(name):
    proc = actionlint(WORKFLOWS / name)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_does_flag_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ matrix.nope }}\n")
    proc = actionlint(broken)
    assert proc.returncode != 0 and "matrix.nope" in proc.stdout


def test_nightly_is_scheduled_dispatchable_and_sharded():
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert "schedule:" in text and "workflow_dispatch:" in text
    assert "--shard" in text and "source: [released, main]" in text


def test_nightly_runs_the_structural_tier_into_the_merged_report():
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert "--tier structural" in text and "reports-${{ matrix.source }}-structural" in text
    assert "needs: [matrix, structural, cross-version]" in text and "pattern: reports-${{ matrix.source }}-*" in text


def test_nightly_runs_the_cross_version_tier_with_its_pickle_cache():
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert "--tier cross-version" in text and "reports-${{ matrix.source }}-cross-version" in text
    # The pickles are not committed: the cache is keyed by the manifest whose sha256s they are checked against.
    assert "actions/cache@v4" in text and "hashFiles('fixtures/cross_version/manifest.json')" in text


def test_nightly_runs_the_structural_tier_on_the_oldest_releases_into_their_own_report():
    import yaml  # transformers' own dependency

    jobs = yaml.safe_load((WORKFLOWS / "nightly.yml").read_text())["jobs"]
    for job in ("structural", "merge"):
        assert "oldest" in jobs[job]["strategy"]["matrix"]["source"], job
    assert "oldest" not in jobs["matrix"]["strategy"]["matrix"]["source"]  # the full tier stays on today's
    env = next(step["env"]["TOX_ENV"] for step in jobs["structural"]["steps"] if "TOX_ENV" in step.get("env", {}))
    assert "matrix.source == 'oldest' && 'compat-oldest'" in env
