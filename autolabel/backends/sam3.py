"""SAM 3 as an engine: text → instance masks in one model, replacing detector + segmenter.

The vision backbone runs once per batch of images; every prompt then reuses those features (one
text + DETR-decoder pass per prompt for the whole batch). Kept masks go from SAM 3's low-res
probabilities straight to full-size RLE, upsampled only around each mask (`instances`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autolabel.backends.base import ForwardStats, PromptBoxes
from autolabel.backends.torch_utils import check_token_limit, load_backend_model, sync_fn
from autolabel.backends.upsample import UPSAMPLE_CHUNK, logits_to_rles
from autolabel.geometry import clip_xyxy
from autolabel.types import RleMasks

DEFAULT_MODEL = "facebook/sam3"
MASK_PROBABILITY = 0.5


def instances(out: Any, min_score: float, sizes: Sequence[tuple[int, int]]) -> list[tuple[Any, ...]]:
    """transformers' `post_process_instance_segmentation`, one image and a few masks at a time: the
    same scores (query × presence), kept queries and scaled boxes; each kept mask's probabilities are
    upsampled only around the mask and straight to RLE (never the (queries, H, W) int64 stack of the
    batch). Returns (xyxy, scores, RleMasks) per image as NumPy/RLE."""
    import torch

    scores = out.pred_logits.sigmoid()
    if getattr(out, "presence_logits", None) is not None:
        scores = scores * out.presence_logits.sigmoid()
    results = []
    for b, (h, w) in enumerate(sizes):
        keep = scores[b] > min_score
        boxes = out.pred_boxes[b][keep] * torch.tensor([w, h, w, h]).to(out.pred_boxes.device)
        rles: list[dict] = []
        low = out.pred_masks[b][keep]
        for start in range(0, len(low), UPSAMPLE_CHUNK):
            chunk = low[start : start + UPSAMPLE_CHUNK].sigmoid().float()
            rles += logits_to_rles(chunk, h, w, MASK_PROBABILITY)
        results.append((boxes.float().cpu().numpy(), scores[b][keep].float().cpu().numpy(), RleMasks(rles, h, w)))
    return results


class Sam3Engine:
    kind = "engine"
    BACKEND, MODEL_CLASS, DEFAULT_MODEL = "sam3", "Sam3Model", DEFAULT_MODEL
    has_scores = True
    segments = True

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.stats = ForwardStats()
        self._sync = sync_fn(device)

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Sam3Engine:
        processor, model = load_backend_model(cls, cfg, "detector", "AutoModel", device, dtype)
        return cls(processor, model, device, dtype)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """SAM 3's CLIP text encoder takes 32 tokens; a longer prompt would be cut silently."""
        limit = int(getattr(self.processor.tokenizer, "model_max_length", 32) or 32)
        check_token_limit(self.BACKEND, self.processor.tokenizer, prompts, limit)

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        import torch

        enc = self.processor.image_processor(images=list(images), return_tensors="pt")
        sizes = [tuple(img.shape[:2]) for img in images]
        with torch.inference_mode(), self.stats.timed(self._sync):
            vision = self.model.get_vision_features(pixel_values=enc["pixel_values"].to(self.device, self.dtype))
        parts: list[list[PromptBoxes]] = [[] for _ in images]
        for k, prompt in enumerate(prompts):
            text = self.processor(text=[prompt] * len(images), return_tensors="pt")
            with torch.inference_mode(), self.stats.timed(self._sync):
                out = self.model(
                    vision_embeds=vision,
                    input_ids=text["input_ids"].to(self.device),
                    attention_mask=text["attention_mask"].to(self.device),
                )
            for b, (xyxy, scores, masks) in enumerate(instances(out, min_score, sizes)):
                (h, w), pidx = sizes[b], np.full(len(scores), k, dtype=np.int64)
                parts[b].append(PromptBoxes(clip_xyxy(xyxy.reshape(-1, 4), w, h), scores, pidx, masks=masks))
        out_boxes = []
        for b, (h, w) in enumerate(sizes):
            merged = PromptBoxes.merge(parts[b]) if parts[b] else PromptBoxes.empty()
            if merged.masks is None:
                merged.masks = RleMasks([], h, w)
            merged.scores = np.asarray(merged.scores, dtype=np.float64)
            out_boxes.append(merged)
        return out_boxes
