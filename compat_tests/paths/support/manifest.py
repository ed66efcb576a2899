"""The legacy fixtures' manifest (fixtures/manifest.json): what older releases wrote, and how to check it.

Written by fixtures/generate.py; read here by the `legacy` path. Each entry is one artifact: its
producer (`timm1.0.3`, `transformers4.48.3`), kind, model name and arguments, seed, input size, the
sha256 of every file and of the reference file holding the producer's output and state tensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# compat_tests is installed editable, so the fixtures sit beside the package in the repository.
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
MANIFEST = FIXTURES / "manifest.json"
KINDS = ("pickle", "state_dict", "safetensors", "timm_hub", "hf_pretrained")


def _field(name: str, doc: str = "") -> property:
    return property(lambda self: self.entry[name], doc=doc)


@dataclass(frozen=True)
class Artifact:
    entry: dict[str, Any]

    id = _field("id", "`<producer>_<kind>`: the override part of a cell id, free of '-'.")
    model = _field("model")
    kind = _field("kind")
    producer = _field("producer")

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.entry["kwargs"])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def load(manifest: Path = MANIFEST) -> tuple[Artifact, ...]:
    """Every artifact of the manifest; none when the fixtures are absent (a checkout without them)."""
    if not manifest.exists():
        return ()
    data = json.loads(manifest.read_text())
    return tuple(Artifact(entry) for entry in data["artifacts"])


def for_model(model: str, manifest: Path = MANIFEST) -> list[Artifact]:
    return [a for a in load(manifest) if a.model == model]


def models(manifest: Path = MANIFEST) -> list[str]:
    """The models that have artifacts: what --models must include to run them all."""
    return sorted({a.model for a in load(manifest)})


def verify(artifact: Artifact, root: Path = FIXTURES) -> list[str]:
    """Files of `artifact` that are absent or whose sha256 differs from the manifest's (empty: all good)."""
    bad = []
    for name, want in artifact.entry["sha256"].items():
        path = root / name
        if not path.exists():
            bad.append(f"{name} (absent)")
        elif sha256_file(path) != want:
            bad.append(f"{name} (sha256 differs)")
    return bad


def total_size(root: Path = FIXTURES) -> int:
    """Bytes of the legacy fixtures under fixtures/ (the committed total that must stay under 30 MB); the
    cross-version snapshots (fixtures/cross_version/) have their own cap, checked with them."""
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and "cross_version" not in p.relative_to(root).parts)
