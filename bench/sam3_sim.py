"""SAM 3's cost from 1 to 80 classes, in the GPU simulation of `bench/gpu_sim.py`: the real `Sam3Engine`
code and the real SAM 3 processor (facebook/sam3's config files, 1008×1008 input) on real images; only the
model's forwards are replaced by sleeps of an assumed H100 cost (below), returning outputs of the right
shapes. Three ways of running K prompts on a batch of B images:

- `per prompt, vision each time`: no sharing at all (the vision backbone per prompt, as a per-prompt
  loop around `Sam3Model(pixel_values, input_ids)` does) — what DART's "5.6× at 3 classes" is against;
- `per prompt, vision shared` (autolabel before): one vision pass, then a text + decoder pass per prompt;
- `all prompts in one pass` (now): the text encoder once per run, every (image, prompt) pair of the batch
  through the DETR encoder/decoder in one call (`prompts_per_pass` at a time).

Assumed costs (not measured; `bench/cuda.py --pairs sam3` times the real model on a GPU): vision 30 ms per
image; text encoder 3 ms per call + 0.1 ms per prompt; DETR encoder/decoder + mask head 5 ms per call + 0.6
ms per (image, prompt) pair — a GPU runs a batch of pairs for much less than one call each.

    python -m bench.sam3_sim [--images 16] [--batch 4] [--classes 1 3 10 80] [--json FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit
from bench.gpu_sim import BUSY, COCO, gpu_busy

HUB = Path(__file__).resolve().parents[2] / "shared" / "hub-files" / "facebook--sam3"
VISION_MS, TEXT_CALL_MS, TEXT_PROMPT_MS, DECODER_CALL_MS, PAIR_MS = 30.0, 3.0, 0.1, 5.0, 0.6
QUERIES, KEPT, LOWRES = 200, 2, 288


class SimSam3:
    """Stands in for Sam3Model: forwards sleep their assumed cost; each (image, prompt) pair has `KEPT`
    confident queries with ellipse masks in SAM 3's 288×288 low-res frame."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def get_vision_features(self, pixel_values: Any) -> Any:
        import torch
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        b = pixel_values.shape[0]
        with gpu_busy(VISION_MS / 1000 * b):
            t = torch.zeros(b, 1, 1, 1)
            return Sam3VisionEncoderOutput(last_hidden_state=t, fpn_hidden_states=(t, t), fpn_position_encoding=(t, t))

    def get_text_features(self, input_ids: Any, attention_mask: Any = None, return_dict: bool = True) -> Any:
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        k = input_ids.shape[0]
        with gpu_busy((TEXT_CALL_MS + TEXT_PROMPT_MS * k) / 1000):
            return BaseModelOutputWithPooling(pooler_output=torch.zeros(k, input_ids.shape[1], 1))

    def __call__(self, vision_embeds: Any = None, pixel_values: Any = None, input_ids: Any = None, **kw: Any) -> Any:
        import torch
        from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput

        if pixel_values is not None:  # no sharing: the vision backbone inside every call
            vision_embeds = self.get_vision_features(pixel_values)
        if input_ids is not None:  # the text encoder inside every call
            self.get_text_features(input_ids)
        pairs = vision_embeds.fpn_hidden_states[0].shape[0]
        with gpu_busy((DECODER_CALL_MS + PAIR_MS * pairs) / 1000):
            logits = torch.full((pairs, QUERIES), -8.0)
            logits[:, :KEPT] = 4.0
            centre = self.rng.uniform(0.2, 0.8, (pairs, QUERIES, 2))
            size = self.rng.uniform(0.05, 0.3, (pairs, QUERIES, 2))
            boxes = torch.tensor(np.concatenate([centre - size / 2, centre + size / 2], -1), dtype=torch.float32)
            g = torch.linspace(0, 1, LOWRES)
            masks = torch.full((pairs, QUERIES, LOWRES, LOWRES), -8.0)
            for q in range(KEPT):
                c, s = torch.tensor(centre[:, q]), torch.tensor(size[:, q]) / 2
                inside = ((g[None, None, :] - c[:, 0, None, None]) / s[:, 0, None, None]) ** 2 + (
                    (g[None, :, None] - c[:, 1, None, None]) / s[:, 1, None, None]
                ) ** 2 <= 1
                masks[:, q] = torch.where(inside, 8.0, -8.0)
        presence = torch.full((pairs, 1), 4.0)
        return Sam3ImageSegmentationOutput(
            pred_masks=masks, pred_boxes=boxes, pred_logits=logits, presence_logits=presence
        )


def per_prompt(eng: Any, images: list[np.ndarray], prompts: list[str], share_vision: bool) -> None:
    """The per-prompt ways: one model call per prompt with its text (and, without sharing, its vision)."""
    import torch

    from autolabel.backends.sam3 import instances

    enc = eng.processor.image_processor(images=images, return_tensors="pt")
    sizes = [im.shape[:2] for im in images]
    vision = eng.model.get_vision_features(pixel_values=enc["pixel_values"]) if share_vision else None
    for prompt in prompts:
        text = eng.processor(text=[prompt] * len(images), return_tensors="pt")
        with torch.inference_mode():
            if share_vision:
                out = eng.model(vision_embeds=vision, input_ids=text["input_ids"])
            else:
                out = eng.model(pixel_values=enc["pixel_values"], input_ids=text["input_ids"])
        instances(out, 0.5, sizes)


def measure(way: str, k: int, images: list[np.ndarray], batch: int) -> dict[str, float]:
    import torch
    from transformers import AutoProcessor

    from autolabel.backends.sam3 import Sam3Engine

    prompts = [f"thing {i}" for i in range(k)]
    eng = Sam3Engine(AutoProcessor.from_pretrained(str(HUB)), SimSam3(), "cpu", torch.float32, prompts_per_pass=16)
    BUSY[0] = 0.0
    t = time.perf_counter()
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        if way == "all prompts in one pass":
            eng.detect(chunk, prompts, 0.5)
        else:
            per_prompt(eng, chunk, prompts, share_vision=way == "per prompt, vision shared")
    wall = time.perf_counter() - t
    return {"gpu_ms_per_image": 1000 * BUSY[0] / len(images), "wall_ms_per_image": 1000 * wall / len(images)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--classes", type=int, nargs="+", default=[1, 3, 10, 80])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from autolabel.images import load_image

    images = [load_image(p) for p in sorted(COCO.glob("*.jpg"))[: a.images]]
    ways = ("per prompt, vision each time", "per prompt, vision shared", "all prompts in one pass")
    result: dict[str, Any] = {
        "images": len(images),
        "batch": a.batch,
        "assumed_ms": {
            "vision_per_image": VISION_MS,
            "text_per_call": TEXT_CALL_MS,
            "text_per_prompt": TEXT_PROMPT_MS,
            "decoder_per_call": DECODER_CALL_MS,
            "decoder_per_pair": PAIR_MS,
        },
    }
    for way in ways:
        rows = {k: measure(way, k, images, a.batch) for k in a.classes}
        base = rows[a.classes[0]]["gpu_ms_per_image"]
        result[way] = {
            str(k): {
                **{m: round(v, 1) for m, v in r.items()},
                "gpu_cost_vs_1_class": round(r["gpu_ms_per_image"] / base, 2),
            }
            for k, r in rows.items()
        }
        print(way, result[way], flush=True)
    top = str(a.classes[-1])
    result["speedup_at_max_classes_vs_no_sharing"] = round(
        result[ways[0]][top]["gpu_ms_per_image"] / result[ways[2]][top]["gpu_ms_per_image"], 2
    )
    result["speedup_at_max_classes_vs_before"] = round(
        result[ways[1]][top]["gpu_ms_per_image"] / result[ways[2]][top]["gpu_ms_per_image"], 2
    )
    emit(result, a.json)


if __name__ == "__main__":
    main()
