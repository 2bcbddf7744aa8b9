from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight Grounding DINO and SAM2 directories (built once per session)."""
    from .tiny_models import build_tiny_gdino, build_tiny_sam2

    root = tmp_path_factory.mktemp("models")
    return {"gdino": build_tiny_gdino(root / "gdino"), "sam2": build_tiny_sam2(root / "sam2")}


@pytest.fixture
def fake_ontology_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "ontology.yaml"
    p.write_text(
        "ontology:\n  red square: square\n  blue ring: ring\n  crimson block: square\n"
        "detector:\n  backend: tests.fakes:FakeDetector\n  box_threshold: 0.3\n"
        "segmenter:\n  backend: tests.fakes:FakeSegmenter\n"
    )
    return p
