"""CUDA path of every backend in fp16 and bf16 (skipped without a GPU; CI has none).

Run on a GPU host with `python -m pytest -m gpu`. Tiny random-weight models keep it fast; what is checked
is the device/precision plumbing: processors on the GPU, finite outputs, non-empty masks on a real image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
COCO = Path(__file__).resolve().parents[3] / "shared" / "data" / "coco-sample" / "coco128_train2017" / "images"


def real_image() -> np.ndarray:
    from autolabel.images import load_image
    from tests.helpers import scene

    files = sorted(COCO.glob("*.jpg")) if COCO.is_dir() else []
    return load_image(files[0]) if files else np.array(scene(640, 480))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize(
    "detector,segmenter",
    [("grounding_dino", "sam2"), ("mm_grounding_dino", "sam_hq"), ("owlv2", "sam"), ("sam3", None)],
)
def test_cuda_backends_in_half_precision(
    tiny_models: dict[str, Path], detector: str, segmenter: str | None, precision: str
) -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.inference.models import load_models
    from autolabel.inference.stages import InferenceCounts, infer_batch

    key = {"grounding_dino": "gdino", "mm_grounding_dino": "mm_gdino", "owlv2": "owlv2", "sam3": "sam3"}[detector]
    ont = {
        "ontology": {"person": "person", "cat": "cat"},
        "detector": {
            "backend": detector,
            "model": str(tiny_models[key]),
            "candidate_threshold": 0.0,
            "box_threshold": 0.0,
            "max_candidates": 10,
        },
    }
    if segmenter:
        ont["segmenter"] = {"backend": segmenter, "model": str(tiny_models[segmenter])}
    plan = make_plan(parse_ontology(ont))
    det, seg = load_models(plan, "cuda", precision)
    img = real_image()
    cands = infer_batch([img, img], plan, det, seg, InferenceCounts())
    for c in cands:
        assert len(c) > 0 and np.isfinite(c.xyxy).all() and np.isfinite(c.score).all()
        assert c.masks is not None and c.masks.areas().sum() > 0
    torch.cuda.synchronize()
