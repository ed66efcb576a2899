"""Shared real models for the suite's own tests: timm's tiny test_* models, built and perturbed once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from compat_tests.source.models import SourceModel, build_source  # noqa: E402


@pytest.fixture(scope="session")
def vit_ls() -> SourceModel:
    """A ViT with LayerScale (`blocks.N.ls1.gamma`)."""
    return build_source("test_vit2")


@pytest.fixture(scope="session")
def byob() -> SourceModel:
    """A ConvNormAct/BatchNorm net, so buffers (running stats) are part of the state."""
    return build_source("test_byobnet")


def fresh(source: SourceModel):
    """A freshly initialised instance of the source's architecture: what a loader loads into."""
    import timm

    return timm.create_model(source.name, pretrained=False, **source.kwargs).eval()
