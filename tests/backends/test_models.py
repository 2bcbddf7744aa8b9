"""Real backends on tiny random-weight models, loaded through the hub-id code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autolabel.backends.grounding_dino import Caption, GroundingDinoDetector, assign_queries, plan_captions
from autolabel.backends.sam2 import Sam2Segmenter
from autolabel.config.ontology import DetectorConfig, SegmenterConfig
from autolabel.errors import ModelLoadError
from autolabel.types import RleMasks
from tests.helpers import scene


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]):  # type: ignore[no-untyped-def]
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_models["gdino"]).tokenizer


def test_one_caption_holds_all_prompts_with_token_spans(tokenizer) -> None:  # type: ignore[no-untyped-def]
    (cap,) = plan_captions(tokenizer, ["red box", "cat", "traffic light"], 256)
    assert cap.text == "red box. cat. traffic light."
    toks = tokenizer.convert_ids_to_tokens(cap.input_ids)
    assert [toks[a:b] for a, b in cap.spans] == [["red", "box"], ["cat"], ["traffic", "light"]]
    assert cap.prompt_ids == (0, 1, 2)


def test_captions_split_only_when_the_token_limit_forces_it(tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompts = [f"red box {'cat ' * (i % 5)}".strip() for i in range(60)]  # ~5 tokens each → > 256 in total
    caps = plan_captions(tokenizer, prompts, 256)
    assert len(caps) == 2
    assert all(len(c.input_ids) <= 256 for c in caps)
    assert [i for c in caps for i in c.prompt_ids] == list(range(60))  # every prompt exactly once, in order
    assert len(plan_captions(tokenizer, prompts[:20], 256)) == 1
    with pytest.raises(ValueError, match="at most"):
        plan_captions(tokenizer, ["cat " * 300], 256)


def test_queries_map_to_prompts_by_token_span_not_substring() -> None:
    # caption "cat. cat bird." — tokens: [CLS] cat . cat bird . [SEP]; prompt 1 contains "cat" as a substring
    cap = Caption("cat. cat bird.", [101, 1, 1012, 1, 2, 1012, 102], (0, 1), ((1, 2), (3, 5)))
    names = ["[CLS]", "cat", ".", "cat", "bird", ".", "[SEP]"]
    probs = np.zeros((4, 256))
    probs[0, 1] = 0.9  # query 0 fires on the first "cat" token → prompt 0
    probs[1, 4] = 0.8  # query 1 on "bird" → prompt 1 ("cat bird"), though "cat" is a substring of it
    probs[2, 2] = 0.95  # query 2 on the "." separator only → unmatched, counted
    probs[3, 3] = 0.1  # query 3 below every threshold → background
    q, pid, scores, unmatched = assign_queries(probs, cap, min_score=0.3, token_names=names)
    assert q.tolist() == [0, 1] and pid.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.9, 0.8])
    assert unmatched == {".": 1}


def test_grounding_dino_batches_images_and_runs_one_pass_per_caption(tiny_models: dict[str, Path]) -> None:
    det = GroundingDinoDetector.from_config(
        DetectorConfig(model=str(tiny_models["gdino"])), device="cpu", dtype=__import__("torch").float32
    )
    images = [np.array(scene(160, 120, seed=i)) for i in range(3)]
    out = det.detect(images, ["red box", "blue circle", "cat"], min_score=0.0)
    assert det.stats.passes == 1  # three prompts, three images: one forward pass
    assert len(out) == 3
    for pb in out:
        assert len(pb.xyxy) > 0 and pb.scores is not None
        assert set(pb.prompt_index.tolist()) <= {0, 1, 2}
        assert (pb.xyxy[:, 0] >= 0).all() and (pb.xyxy[:, 2] <= 160).all() and (pb.xyxy[:, 3] <= 120).all()
    # the same image alone gives the same detections as in the batch (same-size images: no padding)
    single = det.detect(images[1:2], ["red box", "blue circle", "cat"], min_score=0.0)[0]
    np.testing.assert_allclose(single.xyxy, out[1].xyxy, atol=1e-3)


def test_prompts_beyond_the_token_limit_take_a_second_caption_pass(tiny_models: dict[str, Path]) -> None:
    import torch

    det = GroundingDinoDetector.from_config(DetectorConfig(model=str(tiny_models["gdino"])), "cpu", torch.float32)
    prompts = [f"red box {'cat ' * (i % 5)}{i}".strip() for i in range(60)]  # > 256 tokens in all
    out = det.detect([np.array(scene(160, 120))] * 2, prompts, min_score=0.0)
    assert det.stats.passes == 2 and len(det.captions(prompts)) == 2
    assert all(set(pb.prompt_index.tolist()) <= set(range(60)) for pb in out)
    assert any((pb.prompt_index >= len(det.captions(prompts)[0].prompt_ids)).any() for pb in out)


def test_sam2_embeds_once_per_image_and_decodes_all_boxes_in_one_call(tiny_models: dict[str, Path]) -> None:
    import torch

    seg = Sam2Segmenter.from_config(SegmenterConfig(model=str(tiny_models["sam2"])), device="cpu", dtype=torch.float32)
    images = [np.array(scene(160, 120, seed=0)), np.array(scene(100, 80, seed=1)), np.array(scene(64, 64))]
    boxes = [
        np.array([[10, 10, 50, 45], [70, 20, 120, 70], [0, 0, 160, 120]], dtype=float),
        np.zeros((0, 4)),
        np.array([[5, 5, 30, 30]], dtype=float),
    ]
    masks = seg.segment(images, boxes)
    assert [m.shape for m in masks] == [(3, 120, 160), (0, 80, 100), (1, 64, 64)]
    assert all(isinstance(m, RleMasks) for m in masks)  # RLE out of the segmenter: bounded memory
    assert masks[0][0].dtype == bool and masks[0][0].shape == (120, 160)
    # one embedding pass for the two images with boxes (none for the empty one) + one decoder call each
    assert seg.stats.passes == 3


def test_sam_v1_same_contract_and_boxes_land_where_they_should(tiny_models: dict[str, Path]) -> None:
    import torch

    from autolabel.backends.sam import SamSegmenter, resize_longest_side

    assert resize_longest_side(480, 640, 1024) == (768, 1024)
    seg = SamSegmenter.from_config(SegmenterConfig(model=str(tiny_models["sam"]), multimask=True), "cpu", torch.float32)
    images = [np.array(scene(160, 120, seed=0)), np.array(scene(64, 96, seed=1))]
    boxes = [np.array([[10, 10, 50, 45], [70, 20, 120, 70]], dtype=float), np.array([[5, 5, 30, 30]], dtype=float)]
    masks = seg.segment(images, boxes)
    assert [m.shape for m in masks] == [(2, 120, 160), (1, 96, 64)]
    assert seg.stats.passes == 3  # one batched embedding + one decoder call per image


def test_checkpoint_of_another_family_or_raw_pt_is_a_clear_error(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import torch

    with pytest.raises(ModelLoadError, match="is a SamModel, but backend 'sam2' needs a Sam2Model"):
        Sam2Segmenter.from_config(SegmenterConfig(model=str(tiny_models["sam"])), "cpu", torch.float32)
    pt = tmp_path / "sam2.1_hiera_tiny.pt"
    pt.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="raw PyTorch checkpoint") as e:
        Sam2Segmenter.from_config(SegmenterConfig(model=str(pt)), "cpu", torch.float32)
    assert "convert_sam2_to_hf" in (e.value.hint or "")


def test_missing_local_model_path_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    with pytest.raises(ModelLoadError, match="does not exist"):
        GroundingDinoDetector.from_config(DetectorConfig(model=str(tmp_path / "nope")), "cpu", torch.float32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="could not load detector model") as e:
        GroundingDinoDetector.from_config(DetectorConfig(model=str(tmp_path / "empty")), "cpu", torch.float32)
    assert "--detector-model" in (e.value.hint or "")


def test_wrong_kind_of_checkpoint_is_a_clear_error(tiny_models: dict[str, Path]) -> None:
    import torch

    with pytest.raises(ModelLoadError, match="could not load segmenter model"):
        Sam2Segmenter.from_config(SegmenterConfig(model=str(tiny_models["gdino"])), "cpu", torch.float32)


def test_sam3_engine_one_vision_pass_per_batch_and_bool_masks(tiny_models: dict[str, Path]) -> None:
    import torch

    from autolabel.backends.sam3 import Sam3Engine

    eng = Sam3Engine.from_config(DetectorConfig(backend="sam3", model=str(tiny_models["sam3"])), "cpu", torch.float32)
    images = [np.array(scene(160, 120, seed=0)), np.array(scene(160, 120, seed=1))]
    out = eng.detect(images, ["cat", "dog", "red box"], min_score=0.0)
    assert eng.stats.passes == 1 + 1 + 1  # the text encoder once, one vision pass, every prompt in one decoder pass
    for pb in out:
        assert isinstance(pb.masks, RleMasks) and pb.masks.shape[1:] == (120, 160)  # RLE at once
        assert len(pb.masks) == len(pb.xyxy) == len(pb.scores) == len(pb.prompt_index) > 0
        assert set(pb.prompt_index.tolist()) <= {0, 1, 2}


def test_sam3_through_the_cli(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import json

    from tests.helpers import cli, write_images

    write_images(tmp_path / "in", ["a.png"])
    ont = tmp_path / "o.yaml"
    ont.write_text(
        f"ontology:\n  cat: cat\n  dog: dog\ndetector:\n  backend: sam3\n  model: {tiny_models['sam3']}\n"
        "  box_threshold: 0.0\n"
    )
    r = cli("label", str(ont), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-f", "coco", "-q")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "out" / "coco" / "annotations.json").read_text())
    assert data["annotations"] and all(a["area"] > 0 and "segmentation" in a for a in data["annotations"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["segmenter_passes"] == 0 and summary["detector_passes"] == 3


def test_resume_with_real_models_on_mixed_sizes_is_byte_identical(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """Batches pad images to a common size, so the results depend on batch composition: a resumed run
    must run the very same batches to reproduce an uninterrupted one."""
    import sqlite3

    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.export import export_run
    from autolabel.inference.models import load_models
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    sizes = [(160, 120), (100, 140), (128, 96), (90, 90), (150, 100), (120, 160), (64, 80)]
    for i, (w, h) in enumerate(sizes):
        (tmp_path / "in").mkdir(exist_ok=True)
        scene(w, h, seed=i).save(tmp_path / "in" / f"im{i}.png")
    ont = parse_ontology(
        {
            "ontology": {"red box": "box", "blue circle": "circle"},
            "detector": {"backend": "grounding_dino", "model": str(tiny_models["gdino"]), "box_threshold": 0.2},
            "segmenter": {"model": str(tiny_models["sam2"])},
        }
    )
    models = load_models(make_plan(ont), "cpu")
    settings = RunSettings(batch_size=3, device="cpu")
    run_labeling(ont, tmp_path / "in", tmp_path / "ref", settings, backends=models)
    export_run(tmp_path / "ref", ["coco"])
    run_labeling(ont, tmp_path / "in", tmp_path / "out", settings, backends=models)
    con = sqlite3.connect(tmp_path / "out" / "run.sqlite")
    con.execute("DELETE FROM images WHERE relpath IN ('im1.png', 'im4.png', 'im5.png')")  # as if killed
    con.commit()
    con.close()
    summary = run_labeling(ont, tmp_path / "in", tmp_path / "out", settings, backends=models)
    assert summary.processed == 3
    export_run(tmp_path / "out", ["coco"])
    ref = (tmp_path / "ref" / "coco" / "annotations.json").read_bytes()
    assert (tmp_path / "out" / "coco" / "annotations.json").read_bytes() == ref
    assert json.loads(ref)["annotations"]


def test_a_prompt_longer_than_the_text_encoder_is_a_usage_error_at_label_start(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    from autolabel.config.load import parse_ontology
    from autolabel.errors import UsageError
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    (tmp_path / "in").mkdir()
    scene(64, 48).save(tmp_path / "in" / "a.png")
    det = GroundingDinoDetector.from_config(DetectorConfig(model=str(tiny_models["gdino"])), "cpu", torch.float32)
    ont = parse_ontology({"ontology": {"cat " * 300: "cat"}, "segmenter": "none"})
    with pytest.raises(UsageError, match=r"grounding_dino: prompt .* tokens; the text encoder takes at most") as e:
        run_labeling(ont, tmp_path / "in", tmp_path / "out", RunSettings(), backends=(det, None))
    assert e.value.exit_code == 2 and not (tmp_path / "out" / "run.sqlite").exists()


def test_auto_precision_is_bf16_where_supported_and_non_finite_output_is_a_clear_error(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from autolabel.backends.torch_utils import resolve_dtype
    from autolabel.config.load import parse_ontology
    from autolabel.errors import NonFiniteError
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    assert resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == torch.float16
    det = GroundingDinoDetector.from_config(DetectorConfig(model=str(tiny_models["gdino"])), "cpu", torch.float32)

    def overflow(module, inputs, out):  # type: ignore[no-untyped-def]  # what fp16 overflow looks like
        out.logits[0, 0, 0] = float("nan")
        return out

    det.model.register_forward_hook(overflow)
    write = tmp_path / "in"
    write.mkdir()
    for i in range(5):
        scene(64, 48, seed=i).save(write / f"{i}.png")
    ont = parse_ontology({"ontology": {"cat": "cat"}, "segmenter": "none"})
    with pytest.raises(NonFiniteError, match="grounding_dino: the model produced non-finite values") as e:
        run_labeling(ont, write, tmp_path / "out", RunSettings(batch_size=2), backends=(det, None))
    assert "--precision fp32" in (e.value.hint or "") and det.stats.passes == 1  # stopped at once, not per image


def test_real_grounding_dino_tokenizer_spans_cover_word_pieces() -> None:
    """The hub's own WordPiece vocabulary (tests/fixtures): multi-piece prompts map by whole spans."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(Path(__file__).parents[1] / "fixtures" / "grounding-dino-tiny"))
    cap = plan_captions(tok, ["fire hydrant", "t-shirt", "person"], 256)[0]
    pieces = tok.convert_ids_to_tokens(cap.input_ids)
    assert [pieces[a:b] for a, b in cap.spans] == [["fire", "hydra", "##nt"], ["t", "-", "shirt"], ["person"]]
    assert cap.input_ids[0] == 101 and cap.input_ids[-1] == 102 and pieces.count(".") == 3
