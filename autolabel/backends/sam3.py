"""SAM 3 as an engine: text → instance masks in one model, replacing detector + segmenter.

The vision backbone runs once per batch of images; every prompt then reuses those features (one
text + DETR-decoder pass per prompt for the whole batch). Masks become bool NumPy arrays right after
post-processing (SAM 3's raw masks are large int64/float tensors).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..geometry import clip_xyxy
from ..types import RleMasks
from .base import ForwardStats, PromptBoxes
from .torch_utils import load_processor_and_model, sync_fn

DEFAULT_MODEL = "facebook/sam3"
MASK_PROBABILITY = 0.5


class Sam3Engine:
    kind = "engine"
    has_scores = True
    segments = True

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.stats = ForwardStats()
        self._sync = sync_fn(device)

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Sam3Engine:
        from transformers import AutoModel

        processor, model = load_processor_and_model(cfg.model or DEFAULT_MODEL, "detector", "sam3",
                                                    AutoModel.from_pretrained, "Sam3Model", device, dtype)
        return cls(processor, model, device, dtype)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """SAM 3's CLIP text encoder takes 32 tokens; a longer prompt would be cut silently."""
        from ..errors import UsageError

        limit = int(getattr(self.processor.tokenizer, "model_max_length", 32) or 32)
        for p in prompts:
            n = len(self.processor.tokenizer(p)["input_ids"])
            if n > limit:
                raise UsageError(f"sam3: prompt '{p}' is {n} tokens; the text encoder takes at most {limit}",
                                 hint="shorten the prompt")

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        import torch

        enc = self.processor.image_processor(images=list(images), return_tensors="pt")
        sizes = [tuple(img.shape[:2]) for img in images]
        with torch.inference_mode(), self.stats.timed(self._sync):
            vision = self.model.get_vision_features(pixel_values=enc["pixel_values"].to(self.device, self.dtype))
        parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = [[] for _ in images]
        for k, prompt in enumerate(prompts):
            text = self.processor(text=[prompt] * len(images), return_tensors="pt")
            with torch.inference_mode(), self.stats.timed(self._sync):
                out = self.model(vision_embeds=vision, input_ids=text["input_ids"].to(self.device),
                                 attention_mask=text["attention_mask"].to(self.device))
            results = self.processor.post_process_instance_segmentation(
                out, threshold=min_score, mask_threshold=MASK_PROBABILITY, target_sizes=sizes)
            for b, r in enumerate(results):
                # at once to RLE: never keep SAM 3's int64 full-size masks, nor a bool stack of the batch
                masks = RleMasks.from_dense(r["masks"].bool().cpu().numpy().reshape(-1, *sizes[b]))
                del r["masks"]
                parts[b].append((r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy(), masks, k))
        out_boxes = []
        for b, (h, w) in enumerate(sizes):
            p = parts[b]
            xyxy = np.concatenate([x[0].reshape(-1, 4) for x in p]) if p else np.zeros((0, 4))
            scores = np.concatenate([x[1] for x in p]) if p else np.zeros((0,))
            masks = RleMasks.concatenate([x[2] for x in p]) if p else RleMasks([], h, w)
            pidx = np.concatenate([np.full(len(x[1]), x[3], dtype=np.int64) for x in p]) if p else np.zeros(0, int)
            out_boxes.append(PromptBoxes(clip_xyxy(xyxy, w, h), scores.astype(np.float64), pidx, masks=masks))
        return out_boxes
