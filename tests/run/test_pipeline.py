"""The GPU-feeding path: model inputs written into reused batch tensors (bit-identical to the hub's
processors at their real sizes), box-restricted mask upsampling (equal to transformers'
post-processing) and the three-stage pipeline (prepare ‖ models ‖ finish) of the local executor."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autolabel.api import label_folder
from autolabel.backends.preprocess import FastInputs
from autolabel.backends.upsample import crop_counts, logits_to_rles
from autolabel.run.settings import RunSettings
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import scene, write_images

FIXTURE = Path(__file__).parents[1] / "fixtures" / "grounding-dino-tiny"
SIZES = [(640, 480), (480, 640), (500, 333), (1024, 683), (64, 80), (300, 300)]  # (w, h): both orientations


def _images(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    return [np.array(scene(w, h, seed=i)) for i, (w, h) in enumerate(sizes)]


@pytest.mark.parametrize("which", ["grounding_dino", "sam2"])
def test_batch_inputs_are_bit_identical_to_the_hub_processor_at_real_sizes(which: str) -> None:
    import torch
    from transformers import AutoImageProcessor, Sam2ImageProcessor

    ip = AutoImageProcessor.from_pretrained(str(FIXTURE)) if which == "grounding_dino" else Sam2ImageProcessor()
    if which == "grounding_dino":  # the hub's own preprocessor config: 800 shortest / 1333 longest edge
        assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == (800, 1333)
    fast = FastInputs(ip, "cpu")
    assert FastInputs.supports(ip)
    imgs = _images(SIZES)
    kept = []
    for batch in (imgs[:3], imgs[3:], imgs[:2], imgs[4:], imgs[1:4]):  # growing and shrinking batch tensors
        ours, ref = fast(batch), ip(images=batch, return_tensors="pt")
        assert torch.equal(ours.pixel_values, ref["pixel_values"])
        if which == "grounding_dino":
            assert torch.equal(ours.pixel_mask, ref["pixel_mask"])
        kept.append(ours)
        if len(kept) > 1:  # two batches alive at once never share memory
            assert kept[0].pixel_values.data_ptr() != kept[1].pixel_values.data_ptr()
            kept.pop(0)


def test_batch_buffers_are_reused_once_their_batch_is_gone() -> None:
    from transformers import Sam2ImageProcessor

    fast = FastInputs(Sam2ImageProcessor(), "cpu")
    imgs = _images([(64, 48)] * 2)
    first = fast(imgs)
    ptr = first.pixel_values.data_ptr()
    second = fast(imgs)
    assert second.pixel_values.data_ptr() != ptr and fast.pool.allocated == 2
    del first
    gc.collect()
    third = fast(imgs)
    assert third.pixel_values.data_ptr() == ptr and fast.pool.allocated == 2


def _blobs(n: int, seed: int) -> Any:
    import torch

    rng = np.random.default_rng(seed)
    g = np.arange(256, dtype=np.float32)
    low = np.full((n, 256, 256), -6.0, dtype=np.float32)
    for k in range(n):
        cx, cy = rng.uniform(0, 256, 2)
        rx, ry = rng.uniform(2, 60, 2)
        d = ((g[None, :] - cx) / rx) ** 2 + ((g[:, None] - cy) / ry) ** 2
        low[k] = 6.0 * (1 - d) + rng.normal(0, 0.5, (256, 256))  # soft edges, a few speckles
    low[0] = -5.0  # empty
    low[1] = 5.0  # everything
    return torch.from_numpy(low)


@pytest.mark.parametrize("size", [(480, 640), (120, 160), (3000, 4000), (7, 3), (256, 256), (1, 1)])
@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_box_restricted_upsampling_equals_the_full_interpolation(size: tuple[int, int], threshold: float) -> None:
    import torch.nn.functional as F
    from pycocotools import mask as mask_utils

    h, w = size
    low = _blobs(8, seed=h + w)
    ours = logits_to_rles(low, h, w, threshold)
    full = F.interpolate(low[None], (h, w), mode="bilinear", align_corners=False)[0]
    for k in range(len(low)):
        want = mask_utils.encode(np.asfortranarray((full[k] > threshold).numpy().astype(np.uint8)))
        if ours[k]["counts"] != want["counts"]:  # allowed only where rounding meets the threshold itself
            diff = mask_utils.decode(ours[k]) != mask_utils.decode(want)
            assert (np.abs(full[k].numpy()[diff] - threshold) < 1e-5).all()
    assert mask_utils.area(ours[0]) == 0 and mask_utils.area(ours[1]) == h * w


def test_crop_counts_make_the_same_rle_as_encoding_the_full_mask() -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 30, 2)
        ch, cw = rng.integers(1, h + 1), rng.integers(1, w + 1)
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = rng.random((ch, cw)) < rng.choice([0.0, 0.3, 1.0])
        full = np.zeros((h, w), dtype=np.uint8)
        full[y0 : y0 + ch, x0 : x0 + cw] = crop
        want = mask_utils.encode(np.asfortranarray(full))
        got = mask_utils.frPyObjects(
            {"counts": crop_counts(crop, int(y0), int(x0), int(h), int(w)), "size": [int(h), int(w)]}, int(h), int(w)
        )
        assert got["counts"] == want["counts"]


class StagedDetector(FakeDetector):
    """FakeDetector split into prepare (CPU) and detect_prepared (the model), logging what runs where."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def prepare(self, images: Sequence[np.ndarray]) -> Any:
        self.log.append(("prepare", len(self.log), threading.current_thread().name, time.perf_counter()))
        time.sleep(0.1)
        return [img.copy() for img in images]

    def detect_prepared(self, inputs: Any, shapes: Any, prompts: Sequence[str], min_score: float) -> Any:
        self.log.append(("model", len(self.log), threading.current_thread().name, time.perf_counter()))
        time.sleep(0.1)
        return self.detect(inputs, prompts, min_score)


class StagedSegmenter(FakeSegmenter):
    """FakeSegmenter split into segment_raw (the model) and finish (CPU)."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def segment_raw(self, inputs: Any, shapes: Any, boxes: Sequence[np.ndarray]) -> list:
        return [(img, b) for img, b in zip(inputs, boxes)]

    def prepare(self, images: Sequence[np.ndarray]) -> Any:
        return list(images)

    def finish(self, raw: Any, h: int, w: int) -> Any:
        from autolabel.types import RleMasks

        self.log.append(("finish", len(self.log), threading.current_thread().name, time.perf_counter()))
        time.sleep(0.1)
        return RleMasks.from_dense(self.segment([raw[0]], [raw[1]])[0])


def test_the_three_stages_of_consecutive_batches_overlap_and_give_the_sequential_result(
    fake_ontology_yaml: Path, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", [f"im{i}.png" for i in range(8)])
    log: list = []
    label_folder(
        fake_ontology_yaml,
        tmp_path / "in",
        tmp_path / "staged",
        ["coco"],
        RunSettings(batch_size=2),
        backends=(StagedDetector(log), StagedSegmenter(log)),
    )
    label_folder(
        fake_ontology_yaml,
        tmp_path / "in",
        tmp_path / "plain",
        ["coco"],
        RunSettings(batch_size=2),
        backends=(FakeDetector(), FakeSegmenter()),
    )
    staged = (tmp_path / "staged" / "coco" / "annotations.json").read_bytes()
    assert staged == (tmp_path / "plain" / "coco" / "annotations.json").read_bytes()
    threads = {kind: {name for k, _, name, _ in log if k == kind} for kind in ("prepare", "model", "finish")}
    assert all(len(t) == 1 for t in threads.values()) and len(set.union(*threads.values())) == 3
    starts = {kind: [t for k, _, _, t in log if k == kind] for kind in ("prepare", "model", "finish")}
    assert len(starts["prepare"]) == len(starts["model"]) == 4
    # one after the other, batch 2 would be prepared only after batch 1's model (0.1 s) and finish (0.2 s)
    assert starts["prepare"][1] < starts["model"][0] + 0.1  # batch 2 prepared while batch 1 is in the model
    assert starts["finish"][1] > starts["model"][1]  # batch 1 still being finished while batch 2 is in the model


def test_a_failing_prepare_skips_only_its_image(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    class Picky(StagedDetector):
        def prepare(self, images: Sequence[np.ndarray]) -> Any:
            if any(img.shape[1] == 99 for img in images):
                raise RuntimeError("cannot prepare this one")
            return super().prepare(images)

    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    scene(99, 60).save(tmp_path / "in" / "b.png")
    summary, _ = label_folder(
        fake_ontology_yaml,
        tmp_path / "in",
        tmp_path / "out",
        ["coco"],
        RunSettings(batch_size=3),
        backends=(Picky([]), StagedSegmenter([])),
    )
    assert summary.processed == 2
    assert [r for r, _ in summary.skipped] == ["b.png"]
    assert "cannot prepare this one" in summary.skipped[0][1]


def test_tiny_grounding_dino_at_the_hubs_real_input_size_labels_through_the_pipeline(tmp_path: Path) -> None:
    """The hub's own tokenizer and preprocessor config (800 shortest / 1333 longest edge) end to end:
    prepared batch tensors of the real size reach the model, masks come back through `finish`."""
    import json

    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import make_plan
    from autolabel.inference.models import load_models
    from tests.tiny_models import build_tiny_gdino, build_tiny_sam2

    gdino, sam2 = build_tiny_gdino(tmp_path / "g", real_sizes=True), build_tiny_sam2(tmp_path / "s")
    write_images(tmp_path / "in", ["a.png", "b.png", "c.png"], size=(320, 240))
    ont = parse_ontology(
        {
            "ontology": {"fire hydrant": "hydrant", "t-shirt": "shirt"},
            "detector": {
                "backend": "grounding_dino",
                "model": str(gdino),
                "box_threshold": 0.0,
                "candidate_threshold": 0.0,
                "max_candidates": 5,
            },
            "segmenter": {"model": str(sam2)},
        }
    )
    det, seg = load_models(make_plan(ont), "cpu")
    seen: list = []
    det.model.register_forward_hook(lambda m, i, kw, o: seen.append(tuple(kw["pixel_values"].shape)), with_kwargs=True)
    label_folder(
        ont, tmp_path / "in", tmp_path / "out", ["coco"], RunSettings(batch_size=2, device="cpu"), backends=(det, seg)
    )
    assert seen == [(2, 3, 800, 1066), (1, 3, 800, 1066)]  # 320×240 → 800 short side, as the processor resizes
    data = json.loads((tmp_path / "out" / "coco" / "annotations.json").read_text())
    assert len(data["images"]) == 3 and data["annotations"]
    assert {a["prompt"] for a in data["annotations"]} <= {"fire hydrant", "t-shirt"}


def test_non_finite_masks_stop_the_run_from_the_finish_thread(
    tiny_models: dict[str, Path], tmp_path: Path, fake_ontology_yaml: Path
) -> None:
    """The inf/NaN check of SAM 2's masks moved off the model thread: it still stops the run at once."""
    import torch

    from autolabel.backends.sam2 import Sam2Segmenter
    from autolabel.config.ontology import SegmenterConfig
    from autolabel.errors import NonFiniteError

    seg = Sam2Segmenter.from_config(SegmenterConfig(model=str(tiny_models["sam2"])), "cpu", torch.float32)

    def overflow(module, inputs, out):  # type: ignore[no-untyped-def]  # what fp16 overflow looks like
        if getattr(out, "pred_masks", None) is not None:
            out.pred_masks[0, 0, 0, 0, 0] = float("inf")
        return out

    seg.model.register_forward_hook(overflow)
    write_images(tmp_path / "in", [f"{i}.png" for i in range(8)])
    with pytest.raises(NonFiniteError, match="sam2: the model produced non-finite values") as e:
        label_folder(
            fake_ontology_yaml,
            tmp_path / "in",
            tmp_path / "out",
            ["coco"],
            RunSettings(batch_size=2),
            backends=(FakeDetector(), seg),
        )
    assert "--precision fp32" in (e.value.hint or "")
    assert seg.stats.passes <= 2 * (1 + 2)  # at most the two batches already in the pipeline, never all four
