"""OWLv2 through transformers `Owlv2ForObjectDetection`: every prompt is a text query; one forward pass
per batch of images scores every predicted box against every query. Each box goes to its best query
(as transformers' own post-processing does), with that query's sigmoid score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options, PromptBoxes
from autolabel.backends.torch_utils import check_finite, check_token_limit, load_backend_model, sync_fn
from autolabel.geometry import clip_xyxy

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"


def owl_boxes_to_xyxy(pred_boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(Q, 4) normalised cx, cy, w, h of the *padded square* image → absolute xyxy of the original image.
    OWLv2 pads images to a square (bottom/right) before resizing, so both axes scale by max(H, W)."""
    b = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    s = float(max(width, height))
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1) * s
    return clip_xyxy(xyxy, width, height)


class Owlv2Detector:
    kind = "detector"
    BACKEND, MODEL_CLASS, DEFAULT_MODEL = "owlv2", "Owlv2ForObjectDetection", DEFAULT_MODEL
    has_scores = True
    segments = False
    OPTIONS: ClassVar[Options] = {}

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        self._text: dict[tuple[str, ...], Any] = {}

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Owlv2Detector:
        processor, model = load_backend_model(cls, cfg, "detector", "Owlv2ForObjectDetection", device, dtype)
        return cls(processor, model, device, dtype)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """OWLv2's text encoder takes 16 tokens; a longer prompt would be cut silently."""
        limit = int(getattr(self.model.config.text_config, "max_position_embeddings", 16))
        check_token_limit(self.BACKEND, self.processor.tokenizer, prompts, limit)

    def _text_inputs(self, prompts: Sequence[str], n_images: int) -> tuple[Any, Any]:
        key = tuple(prompts)
        if key not in self._text:
            enc = self.processor.tokenizer(list(prompts), padding="max_length", return_tensors="pt")
            self._text = {key: (enc["input_ids"], enc["attention_mask"])}
        ids, mask = self._text[key]
        return ids.repeat(n_images, 1).to(self.device), mask.repeat(n_images, 1).to(self.device)

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        """images: RGB uint8 (H, W, 3). One forward pass for the batch and every prompt."""
        import torch

        pixel_values = self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        ids, mask = self._text_inputs(prompts, len(images))
        with torch.inference_mode(), self.stats.timed(self._sync):
            out = self.model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values.to(self.device, self.dtype))
        logits = out.logits.float()  # (B, boxes, queries)
        best = logits.max(dim=-1)
        scores = best.values.sigmoid().cpu().numpy()
        labels = best.indices.cpu().numpy()
        boxes = out.pred_boxes.float().cpu().numpy()
        check_finite("owlv2", scores, boxes)
        result = []
        for b, img in enumerate(images):
            h, w = img.shape[:2]
            keep = scores[b] >= min_score
            result.append(
                PromptBoxes(
                    owl_boxes_to_xyxy(boxes[b][keep], w, h),
                    scores[b][keep].astype(np.float64),
                    labels[b][keep].astype(np.int64),
                )
            )
        return result
