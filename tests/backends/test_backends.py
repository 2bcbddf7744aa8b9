"""New backends (MM-Grounding-DINO/LLMDet, OWLv2, SAM-HQ) and parity with transformers' own
post-processing for every detector and segmenter (tiny random-weight models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.config.ontology import DetectorConfig, SegmenterConfig
from autolabel.errors import UsageError
from tests.helpers import scene, write_images

pytestmark = pytest.mark.slow


def _capture(model: object) -> list:
    seen: list = []
    model.register_forward_hook(lambda m, i, o: seen.append(o))  # type: ignore[attr-defined]
    return seen


@pytest.mark.parametrize("backend", ["grounding_dino", "mm_grounding_dino"])
def test_grounding_dino_family_boxes_match_transformers_post_processing(
    tiny_models: dict[str, Path], backend: str
) -> None:
    import torch

    from autolabel.backends.grounding_dino import GroundingDinoDetector, MMGroundingDinoDetector

    cls = MMGroundingDinoDetector if backend == "mm_grounding_dino" else GroundingDinoDetector
    det = cls.from_config(
        DetectorConfig(model=str(tiny_models["mm_gdino" if "mm" in backend else "gdino"])), "cpu", torch.float32
    )
    assert type(det.model).__name__ == cls.MODEL_CLASS
    images = [np.array(scene(160, 120)), np.array(scene(160, 120, seed=1))]
    prompts = ["red box", "cat", "traffic light"]
    outs = _capture(det.model)
    ours = det.detect(images, prompts, min_score=0.0)
    cap = det.captions(prompts)[0]
    ids = torch.tensor([cap.input_ids] * 2)
    theirs = det.processor.post_process_grounded_object_detection(
        outs[0], input_ids=ids, threshold=-1.0, text_threshold=0.0, target_sizes=[(120, 160)] * 2
    )
    for o, t in zip(ours, theirs):
        boxes = t["boxes"].numpy().astype(np.float64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, 160)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 120)
        np.testing.assert_allclose(o.xyxy, boxes, atol=1e-3)  # every query, same order, same box
        # where the best token lies in a prompt span, our score is transformers' score
        same = np.isclose(o.scores, t["scores"].numpy(), atol=1e-6)
        assert same.any()


def test_owlv2_matches_transformers_post_processing_and_runs_one_pass(tiny_models: dict[str, Path]) -> None:
    import torch

    from autolabel.backends.owlv2 import Owlv2Detector

    det = Owlv2Detector.from_config(DetectorConfig(model=str(tiny_models["owlv2"])), "cpu", torch.float32)
    images = [np.array(scene(160, 120)), np.array(scene(100, 140, seed=1))]
    prompts = ["red box", "cat", "traffic light"]
    outs = _capture(det.model)
    ours = det.detect(images, prompts, min_score=0.0)
    assert det.stats.passes == 1  # two images, three prompts: one forward pass
    theirs = det.processor.image_processor.post_process_object_detection(
        outs[0], threshold=-1.0, target_sizes=[(120, 160), (140, 100)]
    )
    for o, t, (h, w) in zip(ours, theirs, [(120, 160), (140, 100)]):
        boxes = t["boxes"].numpy().astype(np.float64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        np.testing.assert_allclose(o.xyxy, boxes, atol=1e-3)
        np.testing.assert_allclose(o.scores, t["scores"].numpy(), atol=1e-6)
        assert o.prompt_index.tolist() == t["labels"].tolist()
    from autolabel.errors import UsageError

    with pytest.raises(UsageError, match=r"owlv2: prompt .* the text encoder takes at most 16"):
        det.check_prompts(["a very long prompt " * 5])


@pytest.mark.parametrize("name", ["sam", "sam2", "sam_hq"])
def test_segmenter_masks_match_transformers_post_process_masks(tiny_models: dict[str, Path], name: str) -> None:
    import torch

    from autolabel.backends.sam import SamSegmenter
    from autolabel.backends.sam2 import Sam2Segmenter
    from autolabel.backends.sam_hq import SamHQSegmenter

    cls = {"sam": SamSegmenter, "sam2": Sam2Segmenter, "sam_hq": SamHQSegmenter}[name]
    seg = cls.from_config(SegmenterConfig(model=str(tiny_models[name])), "cpu", torch.float32)
    img = np.array(scene(160, 120))
    boxes = np.array([[10, 10, 50, 45], [70, 20, 120, 70]], dtype=float)
    outs = _capture(seg.model)
    ours = seg.segment([img], [boxes])[0].dense()
    decoder_out = outs[-1]
    theirs = seg.post_process(decoder_out.pred_masks[0][:, :1].float()[None], 120, 160)[:, 0].numpy()
    if name != "sam2":  # SAM / SAM-HQ: the image processor's own function with SAM's reshaped size
        from autolabel.backends.sam import resize_longest_side

        theirs = seg.processor.image_processor.post_process_masks(
            decoder_out.pred_masks[0][:, :1].float()[None],
            [[120, 160]],
            [list(resize_longest_side(120, 160, 1024))],
            mask_threshold=0.0,
            binarize=True,
        )[0][:, 0].numpy()
    else:
        theirs = seg.processor.post_process_masks(
            decoder_out.pred_masks[0][:, :1].float()[None], [[120, 160]], mask_threshold=0.0, binarize=True
        )[0][:, 0].numpy()
    assert ours.shape == (2, 120, 160)
    assert (ours == theirs).all()


def test_sam3_instances_match_transformers_post_process_instance_segmentation(tiny_models: dict[str, Path]) -> None:
    """Every (image, prompt) pair of the batch in one decoder pass, post-processed as transformers does."""
    import torch

    from autolabel.backends.sam3 import MASK_PROBABILITY, Sam3Engine

    eng = Sam3Engine.from_config(DetectorConfig(backend="sam3", model=str(tiny_models["sam3"])), "cpu", torch.float32)
    images = [np.array(scene(160, 120, seed=0)), np.array(scene(90, 130, seed=1))]
    outs = _capture(eng.model)
    ours = eng.detect(images, ["cat", "red box"], min_score=0.2)
    decoder = [o for o in outs if getattr(o, "pred_masks", None) is not None]
    assert len(decoder) == 1 and decoder[0].pred_masks.shape[0] == 4  # 2 images × 2 prompts, one pass
    sizes = [(120, 160), (120, 160), (130, 90), (130, 90)]  # image-major pairs
    theirs = eng.processor.post_process_instance_segmentation(
        decoder[0], threshold=0.2, mask_threshold=MASK_PROBABILITY, target_sizes=sizes
    )
    for j, t in enumerate(theirs):
        b, k = divmod(j, 2)
        mine = ours[b].prompt_index == k
        assert mine.sum() == len(t["scores"]) > 0
        assert np.allclose(ours[b].scores[mine], t["scores"].numpy())
        h, w = images[b].shape[:2]
        assert np.allclose(ours[b].xyxy[mine], np.clip(t["boxes"].numpy(), 0, [w, h, w, h]))
        assert (ours[b].masks[np.flatnonzero(mine)].dense() == t["masks"].numpy().astype(bool)).all()
        presence = decoder[0].presence_logits.sigmoid().reshape(4, -1)[j, 0].item()
        assert ours[b].presence is not None and np.allclose(ours[b].presence[mine], presence)


def test_sam3_all_prompts_in_one_pass_equal_one_pass_per_prompt(tiny_models: dict[str, Path]) -> None:
    """The batched pairs give what one text + decoder pass per prompt gave (the previous way, with the
    model's own text encoding per call), and the text encoder runs once per run."""
    import torch

    from autolabel.backends.sam3 import Sam3Engine, instances

    eng = Sam3Engine.from_config(DetectorConfig(backend="sam3", model=str(tiny_models["sam3"])), "cpu", torch.float32)
    images = [np.array(scene(160, 120, seed=2)), np.array(scene(100, 80, seed=3))]
    prompts = ["cat", "red box", "a dog on the grass", "ring"]
    batched = eng.detect(images, prompts, min_score=0.1)
    passes = eng.stats.passes
    eng.detect(images, prompts, min_score=0.1)
    assert eng.stats.passes - passes == 2  # vision + one decoder pass; the text features were kept
    enc = eng.processor.image_processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        vision = eng.model.get_vision_features(pixel_values=enc["pixel_values"])
    for k, prompt in enumerate(prompts):
        text = eng.processor(text=[prompt] * 2, return_tensors="pt")
        with torch.inference_mode():
            out = eng.model(vision_embeds=vision, input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        for b, (xyxy, scores, masks, _p) in enumerate(instances(out, 0.1, [im.shape[:2] for im in images])):
            mine = batched[b].prompt_index == k
            assert np.allclose(batched[b].scores[mine], scores, atol=1e-5)
            h, w = images[b].shape[:2]
            assert np.allclose(batched[b].xyxy[mine], np.clip(xyxy, 0, [w, h, w, h]), atol=1e-3)
            assert [r["counts"] for r in batched[b].masks[np.flatnonzero(mine)].rles] == [
                r["counts"] for r in masks.rles
            ]
    one = Sam3Engine(eng.processor, eng.model, "cpu", torch.float32, prompts_per_pass=1)
    single = one.detect(images, prompts, min_score=0.1)
    for a, c in zip(batched, single):
        order_a, order_c = np.lexsort((a.scores, a.prompt_index)), np.lexsort((c.scores, c.prompt_index))
        assert np.allclose(a.scores[order_a], c.scores[order_c], atol=1e-5)


def test_new_backends_through_the_cli(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png"])
    ont = tmp_path / "ont.yaml"
    ont.write_text(
        "ontology:\n  red box: box\n  cat: cat\ndetector:\n  box_threshold: 0.0\n  candidate_threshold: 0.0\n"
        "  max_candidates: 20\n"
    )
    runner = CliRunner()
    for det, det_model, seg, seg_model in (
        ("mm_grounding_dino", "mm_gdino", "sam_hq", "sam_hq"),
        ("owlv2", "owlv2", "sam2", "sam2"),
    ):
        out = tmp_path / det
        r = runner.invoke(
            app,
            [
                "label",
                str(ont),
                str(tmp_path / "in"),
                "-o",
                str(out),
                "-f",
                "coco",
                "-q",
                "--detector",
                det,
                "--detector-model",
                str(tiny_models[det_model]),
                "--segmenter",
                seg,
                "--segmenter-model",
                str(tiny_models[seg_model]),
                "--device",
                "cpu",
            ],
        )
        assert r.exit_code == 0, r.output
        data = json.loads((out / "coco" / "annotations.json").read_text())
        assert len(data["images"]) == 2 and data["annotations"], det
        assert all(a["prompt"] in ("red box", "cat") and a["segmentation"] for a in data["annotations"])


def test_backend_options_are_validated_like_the_ontology(tmp_path: Path) -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.errors import OntologyError

    ont = parse_ontology(
        {
            "ontology": {"cat": "cat"},
            "detector": {"backend": "florence2", "task": "grounding"},
            "segmenter": {"backend": "sam_hq", "hq_token_only": True},
        }
    )
    assert ont.detector.options == {"task": "grounding", "max_new_tokens": 1024}
    assert ont.segmenter.options == {"hq_token_only": True}
    with pytest.raises(OntologyError) as e:
        parse_ontology(
            {
                "ontology": {"cat": "cat"},
                "detector": {"backend": "florence2", "tsk": "ovd"},
                "segmenter": {"backend": "sam2", "hq_token_only": True},
            }
        )
    assert "detector.tsk: unknown key; did you mean 'task'?" in e.value.message
    assert "segmenter.hq_token_only: unknown key" in e.value.message  # an option of another backend
    with pytest.raises(OntologyError, match=r"detector.task: must be one of ovd, grounding"):
        parse_ontology({"ontology": {"cat": "cat"}, "detector": {"backend": "florence2", "task": "caption"}})
    r = CliRunner().invoke(app, ["backends"])
    assert "option detector.task: default 'ovd' (one of ovd, grounding)" in r.output
    assert "option segmenter.hq_token_only: default False" in r.output


class _NoDetect:
    kind = "detector"
    has_scores = True
    segments = False

    def __init__(self) -> None:
        from autolabel.backends.base import ForwardStats

        self.stats = ForwardStats()

    @classmethod
    def from_config(cls, cfg: object, device: str, dtype: object) -> _NoDetect:
        return cls()

    def prepare(self, images: object) -> object:  # staged, but without detect_prepared
        return images


def test_a_plugin_missing_a_method_of_its_kind_is_named_at_load() -> None:
    from autolabel.backends import load_backend
    from autolabel.config.ontology import DetectorConfig

    with pytest.raises(UsageError, match=r"has no 'detect', 'detect_prepared'"):
        load_backend(f"{__name__}:_NoDetect", "detector", DetectorConfig(), "cpu", "fp32")


def test_tiling_an_engine_is_refused_with_a_hint() -> None:
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.inference.models import with_tiling
    from tests.fakes import FakeDetector

    ont = parse_ontology({"ontology": {"cat": "cat"}, "detector": {"backend": "sam3", "tiling": {"tile": 64}}})
    with pytest.raises(UsageError, match="tiling works with box detectors"):
        with_tiling(FakeDetector(), make_plan(ont))
