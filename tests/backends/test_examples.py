"""Classes from example boxes: OWLv2 image-conditioned queries and SAM 3 exemplar prompts, against
transformers' own image-guided detection and exemplar inference on tiny random-weight models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autolabel.config.ontology import DetectorConfig
from tests.helpers import scene

torch = pytest.importorskip("torch")


def test_owlv2_example_query_is_transformers_image_guided_query(tiny_models: dict[str, Path]) -> None:
    from autolabel.backends.owlv2 import Owlv2Detector, owl_boxes_to_xyxy

    det = Owlv2Detector.from_config(
        DetectorConfig(backend="owlv2", model=str(tiny_models["owlv2"])), "cpu", torch.float32
    )
    target, example = np.array(scene(160, 120, seed=0)), np.array(scene(140, 100, seed=5))
    proc = det.processor.image_processor
    pv_t = proc(images=[target], return_tensors="pt")["pixel_values"]
    pv_q = proc(images=[example], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        theirs = det.model.image_guided_detection(pixel_values=pv_t, query_pixel_values=pv_q)
        qfm = theirs.query_image_embeds
        objectness = det.model.objectness_predictor(qfm.reshape(1, -1, qfm.shape[-1]))
    best = int(objectness.argmax())  # the query box transformers takes when given no box
    box = owl_boxes_to_xyxy(theirs.query_pred_boxes[0, best : best + 1].numpy(), 140, 100)[0]
    det.set_examples({1: [(example, box)]}, set())  # the prompt 'cat' (index 1) gets the example
    ids, mask = det._text_inputs(["red box", "cat"], 1)
    with torch.inference_mode():
        out = det.model(input_ids=ids, attention_mask=mask, pixel_values=pv_t)
        logits, prompt_of_query = det._with_examples(out, 2)
    assert logits.shape[-1] == 3 and prompt_of_query.tolist() == [0, 1, 1]
    np.testing.assert_allclose(logits[0, :, :2].numpy(), out.logits[0].numpy(), atol=1e-6)  # text queries as before
    np.testing.assert_allclose(logits[0, :, 2].numpy(), theirs.logits[0, :, 0].numpy(), atol=1e-5)
    # through detect: every box goes to its best query; the example's boxes belong to 'cat'
    pb = det.detect([target], ["red box", "cat"], 0.0)[0]
    expect = torch.sigmoid(logits[0].max(dim=-1).values).numpy()
    np.testing.assert_allclose(np.sort(pb.scores), np.sort(expect), atol=1e-6)
    det.set_examples({1: [(example, box)]}, {1})  # 'cat' by its example alone
    pb = det.detect([target], ["red box", "cat"], 0.0)[0]
    alone = torch.sigmoid(torch.maximum(logits[0, :, 0], logits[0, :, 2])).numpy()
    np.testing.assert_allclose(np.sort(pb.scores), np.sort(alone), atol=1e-6)


def test_sam3_exemplar_prompt_is_transformers_text_and_box_prompt(tiny_models: dict[str, Path]) -> None:
    from autolabel.backends.sam3 import Sam3Engine, instances

    eng = Sam3Engine.from_config(DetectorConfig(backend="sam3", model=str(tiny_models["sam3"])), "cpu", torch.float32)
    image = np.array(scene(160, 120, seed=0))
    box = np.array([20.0, 30.0, 70.0, 90.0])
    enc = eng.processor(
        images=[image], text=["cat"], input_boxes=[[box.tolist()]], input_boxes_labels=[[1]], return_tensors="pt"
    )
    with torch.inference_mode():
        native = eng.model(**{k: v for k, v in enc.items() if k != "original_sizes"})
    ((xyxy, scores, masks, presence),) = instances(native, 0.05, [(120, 160)])
    eng.set_examples({1: [(image, box)]}, set())  # the example is on the image itself: SAM 3's own case
    ours = eng.detect([image], ["red box", "cat"], 0.05)[0]
    mine = ours.prompt_index == 1
    assert mine.sum() == len(scores) > 0
    np.testing.assert_allclose(ours.scores[mine], scores, atol=1e-5)
    np.testing.assert_allclose(ours.xyxy[mine], np.clip(xyxy, 0, [160, 120, 160, 120]), atol=1e-3)
    assert ours.presence is not None and np.allclose(ours.presence[mine], presence, atol=1e-6)
    assert [r["counts"] for r in ours.masks[np.flatnonzero(mine)].rles] == [r["counts"] for r in masks.rles]
    # 'red box' has no example: what it gave without any example anywhere
    plain = Sam3Engine(eng.processor, eng.model, "cpu", torch.float32).detect([image], ["red box", "cat"], 0.05)[0]
    np.testing.assert_allclose(ours.scores[~mine], plain.scores[plain.prompt_index == 0], atol=1e-5)


@pytest.mark.parametrize("backend", ["owlv2", "sam3"])
def test_a_class_from_two_example_boxes_through_the_cli(
    backend: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import json

    from autolabel.run.run import Run
    from tests.helpers import cli, write_images

    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    ont = tmp_path / "o.yaml"
    body = (
        f"ontology:\n  widget: widget\n  cat: cat\ndetector:\n  backend: {backend}\n  model: {tiny_models[backend]}\n"
        "  box_threshold: 0.0\n  candidate_threshold: 0.0\n  max_candidates: 10\n"
        + ("segmenter:\n  backend: none\n" if backend == "owlv2" else "")
        + "examples:\n  widget:\n    text: false\n    boxes:\n"
        "      - {image: a.png, box: [10, 10, 60, 50]}\n      - {image: b.png, box: [20, 30, 90, 100]}\n"
    )
    ont.write_text(body)
    out = tmp_path / "out"
    r = cli("label", str(ont), str(tmp_path / "in"), "-o", str(out), "-f", "coco", "-q")
    assert r.returncode == 0, r.stderr
    with Run.open(out) as run:
        settings = run.meta.settings
        found = [int(p) for c in run.candidates() for p in c.candidates.prompt_index]
    boxes = [["a.png", [10.0, 10.0, 60.0, 50.0]], ["b.png", [20.0, 30.0, 90.0, 100.0]]]
    assert settings["examples"][0]["boxes"] == boxes
    assert set(settings["examples.images"]) == {"a.png", "b.png"}
    assert 0 in found  # candidates of the class known by its examples alone
    assert json.loads((out / "coco" / "annotations.json").read_text())["categories"][0]["name"] == "widget"
    moved = body.replace("[20, 30, 90, 100]", "[20, 30, 95, 100]")
    ont.write_text(moved)
    r = cli("label", str(ont), str(tmp_path / "in"), "-o", str(out), "-q")
    assert r.returncode != 0 and "examples:" in r.stderr  # other examples, other candidates: a new run
    ont.write_text(body.replace("b.png, box", "nope.png, box"))
    r = cli("label", str(ont), str(tmp_path / "in"), "-o", str(tmp_path / "other"), "-q")
    assert r.returncode == 2 and "examples.widget[1]: cannot read" in r.stderr


def test_detectors_without_examples_refuse_them() -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.errors import UsageError

    with pytest.raises(UsageError) as e:
        parse_ontology(
            {
                "ontology": {"cat": "cat"},
                "detector": {"backend": "grounding_dino"},
                "examples": {"cat": [{"image": "a.png", "box": [0, 0, 5, 5]}]},
            }
        )
    assert "detector.backend: 'grounding_dino' cannot take example boxes; owlv2 and sam3 can" in e.value.message
