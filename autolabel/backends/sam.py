"""SAM (v1) through transformers `SamModel`: same contract as SAM 2 — one embedding per image, all boxes in one call."""

from __future__ import annotations

from typing import Any

import numpy as np

from .sam2 import UPSAMPLE_CHUNK, Sam2Segmenter

DEFAULT_MODEL = "facebook/sam-vit-base"


def resize_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """SAM's ResizeLongestSide: the (height, width) the image has inside the padded model input."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class SamSegmenter(Sam2Segmenter):
    DEFAULT_MODEL = DEFAULT_MODEL
    MODEL_CLASS = "SamModel"
    BACKEND = "sam"

    def select_embedding(self, emb: Any, j: int) -> Any:
        return emb[j : j + 1]  # SAM v1: one (B, 256, 64, 64) tensor

    def _longest(self) -> int:
        size = self.processor.image_processor.size  # a dict or a SizeDict, {"longest_edge": 1024}
        longest = size.get("longest_edge") if hasattr(size, "get") else getattr(size, "longest_edge", None)
        return int(longest or 1024)

    def decode(self, emb_j: Any, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        import torch

        new_h, new_w = resize_longest_side(height, width, self._longest())
        scaled = boxes * np.array([new_w / width, new_h / height, new_w / width, new_h / height])
        input_boxes = torch.as_tensor(scaled[None], dtype=self.dtype, device=self.device)  # (1, N, 4)
        with torch.inference_mode(), self.stats.timed(self._sync):
            out = self.model(image_embeddings=emb_j, input_boxes=input_boxes, multimask_output=self.multimask)
        pred = out.pred_masks[0]  # (N, M, 256, 256)
        if pred.shape[1] > 1:
            best = out.iou_scores[0].argmax(dim=-1)
            pred = pred[torch.arange(len(pred)), best][:, None]
        chunks = []
        for start in range(0, len(pred), UPSAMPLE_CHUNK):
            part = pred[start : start + UPSAMPLE_CHUNK].float()[None]
            m = self.processor.image_processor.post_process_masks(
                part, [[height, width]], [[new_h, new_w]], mask_threshold=self.mask_threshold, binarize=True)[0]
            chunks.append(m[:, 0].cpu().numpy().astype(bool))
        return np.concatenate(chunks) if chunks else np.zeros((0, height, width), dtype=bool)
