"""Florence-2 on a tiny random-weight model whose output is forced to a chosen token sequence,
so parsing and class mapping are really exercised (random weights only emit garbage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autolabel.backends.florence2 import Florence2Detector, match_phrase
from autolabel.config.ontology import DetectorConfig
from tests.helpers import scene


class ForceSequence:
    """A LogitsProcessor that makes generate emit `per_prompt[k]` for the k-th generate call, then EOS."""

    def __init__(self, sequences: list[list[int]], eos: int) -> None:
        self.sequences, self.eos, self.call, self.start = sequences, eos, -1, None

    def __call__(self, input_ids, scores):  # type: ignore[no-untyped-def]
        import torch

        if input_ids.shape[1] == 1:  # first step of a new generate call
            self.call += 1
        seq = self.sequences[min(self.call, len(self.sequences) - 1)]
        step = input_ids.shape[1] - 1
        tok = seq[step] if step < len(seq) else self.eos
        forced = torch.full_like(scores, float("-inf"))
        forced[:, tok] = 0.0
        return forced


def detector(path: Path, task: str, outputs: list[str]) -> Florence2Detector:
    import torch
    from transformers import LogitsProcessorList

    det = Florence2Detector.from_config(
        DetectorConfig(backend="florence2", model=str(path), options={"task": task, "max_new_tokens": 40}),
        "cpu",
        torch.float32,
    )
    tok = det.processor.tokenizer
    ids = [tok(o, add_special_tokens=False).input_ids for o in outputs]
    det.generate_kwargs = {
        "num_beams": 1,
        "do_sample": False,
        "logits_processor": LogitsProcessorList([ForceSequence(ids, tok.eos_token_id)]),
    }
    return det


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [("car", 0), ("A Car", 0), ("the pickup truck", 1), ("a red pickup truck", 1), ("trucks", None), ("dog", None)],
)
def test_grounded_phrases_map_to_prompts(phrase: str, expected: int | None) -> None:
    assert match_phrase(phrase, ["car", "pickup truck", "truck"]) == expected


def test_ovd_runs_one_batched_pass_per_prompt_and_maps_exactly(tiny_models: dict[str, Path]) -> None:
    det = detector(
        tiny_models["florence2"],
        "ovd",
        [
            "cat<loc_100><loc_200><loc_300><loc_400>",
            "dog<loc_500><loc_500><loc_900><loc_990>dog<loc_0><loc_0><loc_10><loc_10>",
        ],
    )
    images = [np.array(scene(160, 120, seed=i)) for i in range(2)]
    out = det.detect(images, ["cat", "dog"], min_score=0.3)
    assert det.stats.passes == 2  # one generate call per prompt, both images in it
    for pb in out:
        assert pb.scores is None  # never a fake 1.0
        assert pb.prompt_index.tolist() == [0, 1, 1]
        np.testing.assert_allclose(pb.xyxy[0], [(100.5) * 0.16, 200.5 * 0.12, 300.5 * 0.16, 400.5 * 0.12], atol=0.6)


def test_grounding_one_pass_maps_phrases_and_counts_unmatched(tiny_models: dict[str, Path]) -> None:
    det = detector(
        tiny_models["florence2"],
        "grounding",
        ["a cat<loc_100><loc_200><loc_300><loc_400>a tree<loc_500><loc_500><loc_900><loc_990>"],
    )
    (pb,) = det.detect([np.array(scene())], ["cat", "dog"], min_score=0.3)
    assert det.stats.passes == 1
    assert pb.prompt_index.tolist() == [0] and pb.unmatched == {"a tree": 1}


def test_cli_seed_000_pipeline_florence2_sam2_gives_valid_coco_without_scores(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """Florence-2 → SAM2 through the engine and the COCO exporter (random weights → we accept whatever
    boxes come, but confidence must be absent and the file must load)."""
    import json

    from pycocotools.coco import COCO

    from autolabel.config.load import parse_ontology
    from autolabel.export import export_run
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings
    from tests.helpers import write_images

    write_images(tmp_path / "in", ["a.png", "b.png"])
    ont = parse_ontology(
        {
            "ontology": {"cat": "cat", "dog": "dog"},
            "detector": {"backend": "florence2", "model": str(tiny_models["florence2"]), "max_new_tokens": 40},
            "segmenter": {"backend": "sam2", "model": str(tiny_models["sam2"])},
        }
    )
    det = detector(
        tiny_models["florence2"],
        "ovd",
        ["cat<loc_100><loc_200><loc_300><loc_400>", "dog<loc_500><loc_500><loc_900><loc_990>"],
    )
    from autolabel.config.plan import make_plan
    from autolabel.inference.models import load_models

    _, seg = load_models(make_plan(ont), "cpu")
    run_labeling(ont, tmp_path / "in", tmp_path / "out", RunSettings(batch_size=2), backends=(det, seg))
    export_run(tmp_path / "out", ["coco"])
    path = tmp_path / "out" / "coco" / "annotations.json"
    coco = COCO(str(path))
    anns = json.loads(path.read_text())["annotations"]
    assert len(coco.dataset["images"]) == 2
    assert anns and all("score" not in a and a["iscrowd"] == 0 for a in anns)
    assert {a["prompt"] for a in anns} <= {"cat", "dog"}
