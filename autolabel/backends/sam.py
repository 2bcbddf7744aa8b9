"""SAM (v1) through transformers `SamModel`: same contract as SAM 2 — one embedding per image, all boxes in one call."""

from __future__ import annotations

from typing import Any

import numpy as np

from autolabel.backends.sam2 import Sam2Segmenter

DEFAULT_MODEL = "facebook/sam-vit-base"


def resize_longest_side(height: int, width: int, longest: int) -> tuple[int, int]:
    """SAM's ResizeLongestSide: the (height, width) the image has inside the padded model input."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class SamSegmenter(Sam2Segmenter):
    DEFAULT_MODEL = DEFAULT_MODEL
    MODEL_CLASS = "SamModel"
    BACKEND = "sam"
    FAST_INPUTS = False  # SAM pads to a fixed 1024 × 1024: its own processor makes the inputs

    def preprocess_kwargs(self) -> dict[str, Any]:
        return {}  # SAM v1's image processor runs on the CPU

    def select_embedding(self, emb: Any, j: int) -> Any:
        return emb[j : j + 1]  # SAM v1: one (B, 256, 64, 64) tensor

    def _longest(self) -> int:
        size = self.processor.image_processor.size  # a dict or a SizeDict, {"longest_edge": 1024}
        longest = size.get("longest_edge") if hasattr(size, "get") else getattr(size, "longest_edge", None)
        return int(longest or 1024)

    def model_boxes(self, boxes: np.ndarray, height: int, width: int) -> Any:
        """Boxes scaled into the resized (longest side) image, as SAM's processor does."""
        import torch

        new_h, new_w = resize_longest_side(height, width, self._longest())
        scaled = boxes * np.array([new_w / width, new_h / height, new_w / width, new_h / height])
        return torch.as_tensor(scaled[None], dtype=torch.float32)  # (1, N, 4)

    def image_frame(self, part: Any, height: int, width: int) -> Any:
        """SAM's first post-processing step as transformers does it (upsample to the padded 1024 input,
        crop the padding); the second, to the full size, is `finish`'s box-restricted one."""
        import torch.nn.functional as F

        pad = self.processor.image_processor.pad_size
        pad_hw = (int(pad["height"]), int(pad["width"])) if hasattr(pad, "__getitem__") else (1024, 1024)
        rh, rw = resize_longest_side(height, width, self._longest())
        return F.interpolate(part, pad_hw, mode="bilinear", align_corners=False)[:, 0, :rh, :rw]

    def post_process(self, part: Any, height: int, width: int) -> Any:
        reshaped = list(resize_longest_side(height, width, self._longest()))
        return self.processor.image_processor.post_process_masks(
            part, [[height, width]], [reshaped], mask_threshold=self.mask_threshold, binarize=True
        )[0]
