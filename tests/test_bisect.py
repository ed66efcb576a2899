import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from compat_tests.tools.bisect import BisectError, between, first_change

# As published on PyPI: 1.0.0-1.0.2 and 1.0.4-1.0.6 never were.
RELEASES = [Version("0.9.16"), Version("1.0.3")] + [Version(f"1.0.{i}") for i in range(7, 32)]


@given(st.integers(1, len(RELEASES) - 1))
def test_first_change_finds_the_regression_with_few_probes(step):
    probed = []

    def outcome(v):
        probed.append(v)
        return ("failed", "kwarg-conflict") if RELEASES.index(v) >= step else ("passed", "")

    assert first_change(RELEASES, outcome) == (RELEASES[step], ("failed", "kwarg-conflict"))
    assert len(set(probed)) <= 2 + len(RELEASES).bit_length()


def test_no_change_between_equal_ends():
    assert first_change(RELEASES, lambda v: ("passed", "")) is None


def test_between_keeps_the_published_range_in_order():
    assert between(RELEASES, Version("1.0.30"), Version("1.0.28")) == [Version(f"1.0.{i}") for i in (28, 29, 30)]


def test_between_refuses_unpublished_ends():
    with pytest.raises(BisectError, match="1.0.4 is not a published release"):
        between(RELEASES, Version("1.0.4"), Version("1.0.9"))


def test_the_cli_hands_bisect_its_arguments_and_refuses_a_bad_id(capsys):
    from compat_tests.tools.cli import main

    assert main(["bisect", "resnet18_state_dict", "--good", "1.0.3", "--bad", "1.0.9"]) == 2
    assert "not a scenario id" in capsys.readouterr().err


@pytest.mark.parametrize("scenario_id", ["test_vit2-create_model-base", "test_vit2-pickle-base@meta"])
def test_a_probe_runs_exactly_its_cell_numeric_or_structural(tmp_path, scenario_id):
    """A probe with an empty overlay (as if that release were installed already) runs the installed timm. A
    structural id's "@" once made pytest's -k refuse the selection, so every such probe read "no record"."""
    import timm

    from compat_tests.tools.bisect import probe

    (tmp_path / f"timm-{timm.__version__}").mkdir()  # the overlay exists: nothing to install
    assert probe(scenario_id, "timm", Version(timm.__version__), tmp_path) == ("passed", "")
