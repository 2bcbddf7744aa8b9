"""The VLM verifier on a tiny random-weight Florence-2 built from the real processor setup: its P(yes) is
the softmax of transformers' own first answer-token logits over the yes/no tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def florence2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_florence2

    return build_tiny_florence2(tmp_path_factory.mktemp("vlm") / "florence2")


def test_vlm_verifier_matches_transformers_generate(florence2: Path) -> None:
    from autolabel.backends.vlm import VlmVerifier, crop
    from autolabel.config.ontology import VerifierConfig

    v = VlmVerifier.from_config(VerifierConfig(model=str(florence2)), "cpu", torch.float32)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 60, 70], [100, 5, 158, 40], [0, 0, 160, 120]], dtype=np.float64)
    questions = ["Is this a cat? Answer yes or no.", "Is this a dog? Answer yes or no.", "Is this a cat?"]
    p = v.verify(image, boxes, questions)
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
    # transformers' own path: generate, raw logits of the first answer token (after a forced BOS, if any)
    crops = [crop(image, b, v.context) for b in boxes]
    expected = []
    for c, q in zip(crops, questions):
        enc = v.processor(text=[q], images=[c], return_tensors="pt")
        out = v.model.generate(
            **enc, max_new_tokens=3, do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True
        )
        forced = v.model.generation_config.forced_bos_token_id
        logits = out.logits[1 if forced is not None else 0][0].float().numpy()
        yes, no = np.logaddexp.reduce(logits[v.yes]), np.logaddexp.reduce(logits[v.no])
        expected.append(1 / (1 + np.exp(no - yes)))
    np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-6)
    assert v.stats.passes == 1  # every crop of the image in one forward pass
    assert v.yes and v.no and not set(v.yes) & set(v.no)


def test_vlm_verifier_refuses_a_missing_model(tmp_path: Path) -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.errors import ModelLoadError
    from autolabel.inference.models import preflight_models

    ont = parse_ontology(
        {
            "ontology": {"cat": "cat"},
            "detector": {"backend": "tests.fakes:FakeDetector"},
            "segmenter": "none",
            "verifier": {"model": str(tmp_path / "nope")},
        }
    )
    with pytest.raises(ModelLoadError) as e:
        preflight_models(make_plan(ont))
    assert "verifier model path" in e.value.message and "verifier.model (ontology)" in (e.value.hint or "")


def test_vlm_verifier_with_a_chat_model_matches_transformers_generate(tmp_path: Path) -> None:
    """The default family (SmolVLM): the question through the chat template, several crops padded into one
    forward pass, each P(yes) from the first answer token as `generate` scores it alone."""
    from autolabel.backends.vlm import VlmVerifier, crop
    from autolabel.config.ontology import VerifierConfig
    from tests.tiny_models import build_tiny_smolvlm

    path = build_tiny_smolvlm(tmp_path / "smolvlm")
    v = VlmVerifier.from_config(VerifierConfig(model=str(path)), "cpu", torch.float32)
    assert v.chat
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 40, 50], [60, 10, 118, 80]], dtype=np.float64)
    questions = ["Is this a cat? Answer yes or no.", "Is there a dog in the picture?"]  # different lengths
    p = v.verify(image, boxes, questions)
    assert v.stats.passes == 1
    for i, q in enumerate(questions):
        msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
        text = v.processor.apply_chat_template(msg, add_generation_prompt=True)
        enc = v.processor(text=[text], images=[[crop(image, boxes[i], v.context)]], return_tensors="pt")
        out = v.model.generate(
            **enc, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
        logits = out.logits[0][0].float().numpy()
        yes, no = np.logaddexp.reduce(logits[v.yes]), np.logaddexp.reduce(logits[v.no])
        np.testing.assert_allclose(p[i], 1 / (1 + np.exp(no - yes)), rtol=1e-4, atol=1e-6)
