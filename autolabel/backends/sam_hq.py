"""SAM-HQ through transformers `SamHQModel`: SAM v1's contract (one embedding per image, all boxes of
an image in one decoder call) plus a high-quality output token fed with early ViT features."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from autolabel.backends.base import Options, option_values
from autolabel.backends.sam import SamSegmenter

DEFAULT_MODEL = "syscv-community/sam-hq-vit-base"


class SamHQSegmenter(SamSegmenter):
    DEFAULT_MODEL = DEFAULT_MODEL
    MODEL_CLASS = "SamHQModel"
    BACKEND = "sam_hq"
    OPTIONS: ClassVar[Options] = {"hq_token_only": False}  # true: the HQ mask alone (SAM-HQ's "hq_token_only")
    hq_token_only = False

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> SamHQSegmenter:
        seg = cast(SamHQSegmenter, super().from_config(cfg, device, dtype))
        seg.hq_token_only = bool(option_values(cls.OPTIONS, cfg.options)["hq_token_only"])
        return seg

    def select_embedding(self, emb: Any, j: int) -> Any:
        image_embeddings, intermediate = emb
        return image_embeddings[j : j + 1], [e[j : j + 1] for e in intermediate]

    def decoder_inputs(self, emb_j: Any) -> dict[str, Any]:
        image_embeddings, intermediate = emb_j
        return {
            "image_embeddings": image_embeddings,
            "intermediate_embeddings": intermediate,
            "hq_token_only": self.hq_token_only,
        }
