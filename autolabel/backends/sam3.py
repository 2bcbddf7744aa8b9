"""SAM 3 as an engine: text → instance masks in one model, replacing detector + segmenter.

The vision backbone runs once per batch of images and the text encoder once per run (the prompts do not
change); the DETR encoder/decoder then takes every (image, prompt) pair of the batch in one pass — up to
`prompts_per_pass` prompts at a time, which bounds its memory (each pair holds the image's features).
Kept masks go from SAM 3's low-res probabilities straight to full-size RLE, upsampled only around each
mask (`instances`). Each candidate keeps SAM 3's presence score (is the concept in the image at all?)
beside its score (query × presence), so decisions can use it apart (`detector.min_presence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options, PromptBoxes, option_values
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
    batch). Returns (xyxy, scores, RleMasks, presence) per output row as NumPy/RLE."""
    import torch

    scores = out.pred_logits.sigmoid()
    presence = torch.ones(scores.shape[0], device=scores.device)
    if getattr(out, "presence_logits", None) is not None:
        present = out.presence_logits.sigmoid()
        presence = present.reshape(scores.shape[0], -1)[:, 0]
        scores = scores * present
    results = []
    for b, (h, w) in enumerate(sizes):
        keep = scores[b] > min_score
        boxes = out.pred_boxes[b][keep] * torch.tensor([w, h, w, h]).to(out.pred_boxes.device)
        rles: list[dict] = []
        low = out.pred_masks[b][keep]
        for start in range(0, len(low), UPSAMPLE_CHUNK):
            chunk = low[start : start + UPSAMPLE_CHUNK].sigmoid().float()
            rles += logits_to_rles(chunk, h, w, MASK_PROBABILITY)
        kept = scores[b][keep].float().cpu().numpy()
        results.append((boxes.float().cpu().numpy(), kept, RleMasks(rles, h, w), float(presence[b])))
    return results


def repeat_vision(vision: Any, n: int) -> Any:
    """The vision features of a batch with each image repeated `n` times in a row (image-major pairs)."""
    import torch

    def rep(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.repeat_interleave(n, dim=0)
        if isinstance(v, (tuple, list)):
            return type(v)(rep(x) for x in v)
        return v

    return type(vision)(**{k: rep(v) for k, v in vision.items()})


class Sam3Engine:
    kind = "engine"
    BACKEND, MODEL_CLASS, DEFAULT_MODEL = "sam3", "Sam3Model", DEFAULT_MODEL
    OPTIONS: ClassVar[Options] = {"prompts_per_pass": 16}
    EXAMPLES = True  # takes example boxes as exemplar (geometry) prompts (`set_examples`)
    has_scores = True
    segments = True

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any, prompts_per_pass: int = 16) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.prompts_per_pass = max(1, int(prompts_per_pass))
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        self._text: tuple[tuple[str, ...], Any, Any] | None = None  # (prompts, text features, attention mask)
        self._examples: dict[int, tuple[Any, Any]] = {}  # prompt index → exemplar features (G, D), mask (G,)
        self._text_off: set[int] = set()

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Sam3Engine:
        processor, model = load_backend_model(cls, cfg, "detector", "AutoModel", device, dtype)
        opts = option_values(cls.OPTIONS, cfg.options)
        return cls(processor, model, device, dtype, int(opts["prompts_per_pass"]))

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """SAM 3's CLIP text encoder takes 32 tokens; a longer prompt would be cut silently."""
        limit = int(getattr(self.processor.tokenizer, "model_max_length", 32) or 32)
        check_token_limit(self.BACKEND, self.processor.tokenizer, prompts, limit)

    def text_features(self, prompts: Sequence[str]) -> tuple[Any, Any]:
        """(text features (K, L, D), attention mask (K, L)) of the prompts: encoded once, then reused."""
        import torch

        if self._text is None or self._text[0] != tuple(prompts):
            text = self.processor(text=list(prompts), return_tensors="pt")
            mask = text["attention_mask"].to(self.device)
            with torch.inference_mode(), self.stats.timed(self._sync):
                feats = self.model.get_text_features(
                    input_ids=text["input_ids"].to(self.device), attention_mask=mask, return_dict=True
                )
            self._text = (tuple(prompts), *self._with_examples(feats.pooler_output, mask))
        return self._text[1], self._text[2]

    def set_examples(self, examples: dict[int, list[tuple[np.ndarray, np.ndarray]]], text_off: set[int]) -> None:
        """Example boxes per prompt index: [(RGB uint8 image, xyxy pixel box), ...]. Each example's box is
        encoded on its own image by SAM 3's geometry encoder (as SAM 3 encodes an exemplar box on the image
        it is drawn on), and a prompt's exemplar tokens follow its text tokens, as SAM 3 joins a text and
        exemplar boxes; prompts in `text_off` keep their exemplars alone."""
        self._examples = {k: self.exemplar_tokens(items) for k, items in examples.items()}
        self._text_off, self._text = set(text_off), None

    def exemplar_tokens(self, items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Any, Any]:
        """(tokens (G, D), mask (G,)) of a prompt's example boxes, each on its own image."""
        import torch

        tokens, masks = [], []
        for image, box in items:
            enc = self.processor(images=[image], input_boxes=[[[float(v) for v in box]]], return_tensors="pt")
            boxes = enc["input_boxes"].to(self.device, self.dtype)
            with torch.inference_mode(), self.stats.timed(self._sync):
                vision = self.model.get_vision_features(pixel_values=enc["pixel_values"].to(self.device, self.dtype))
                geo = self.model.geometry_encoder(
                    box_embeddings=boxes,
                    box_mask=torch.ones(boxes.shape[:2], dtype=torch.bool, device=self.device),
                    box_labels=torch.ones(boxes.shape[:2], dtype=torch.long, device=self.device),
                    img_feats=vision.fpn_hidden_states[:-1],
                    img_pos_embeds=vision.fpn_position_encoding[:-1],
                )
            tokens.append(geo.last_hidden_state[0])
            masks.append(geo.attention_mask[0])
        return torch.cat(tokens), torch.cat(masks)

    def _with_examples(self, text: Any, mask: Any) -> tuple[Any, Any]:
        """Prompt features (K, L + G, D) and mask: each prompt's text tokens, then its exemplar tokens (padded,
        masked, to the longest); text features unchanged without examples."""
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        if not self._examples:
            return BaseModelOutputWithPooling(pooler_output=text), mask
        g = max(len(m) for _, m in self._examples.values())
        k, _, d = text.shape
        geo = torch.zeros(k, g, d, dtype=text.dtype, device=text.device)
        geo_mask = torch.zeros(k, g, dtype=mask.dtype, device=mask.device)
        mask = mask.clone()
        for p, (tokens, m) in self._examples.items():
            geo[p, : len(m)], geo_mask[p, : len(m)] = tokens.to(text.dtype), m.to(mask.dtype)
            if p in self._text_off:
                mask[p] = 0
        feats = torch.cat([text, geo], dim=1)
        return BaseModelOutputWithPooling(pooler_output=feats), torch.cat([mask, geo_mask], dim=1)

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        enc = self.processor.image_processor(images=list(images), return_tensors="pt")
        sizes = [tuple(img.shape[:2]) for img in images]
        with torch.inference_mode(), self.stats.timed(self._sync):
            vision = self.model.get_vision_features(pixel_values=enc["pixel_values"].to(self.device, self.dtype))
        feats, mask = self.text_features(prompts)
        parts: list[list[PromptBoxes]] = [[] for _ in images]
        for start in range(0, len(prompts), self.prompts_per_pass):
            ks = list(range(start, min(start + self.prompts_per_pass, len(prompts))))
            text = BaseModelOutputWithPooling(pooler_output=feats.pooler_output[ks].repeat(len(images), 1, 1))
            with torch.inference_mode(), self.stats.timed(self._sync):
                out = self.model(
                    vision_embeds=repeat_vision(vision, len(ks)) if len(ks) > 1 else vision,
                    text_embeds=text,
                    attention_mask=mask[ks].repeat(len(images), 1),
                )
            pair_sizes = [sizes[b] for b in range(len(images)) for _ in ks]
            for j, (xyxy, scores, masks, presence) in enumerate(instances(out, min_score, pair_sizes)):
                b, k = divmod(j, len(ks))
                (h, w), n = sizes[b], len(scores)
                pb = PromptBoxes(clip_xyxy(xyxy.reshape(-1, 4), w, h), scores, np.full(n, ks[k]), masks=masks)
                pb.presence = np.full(n, presence)
                parts[b].append(pb)
        out_boxes = []
        for b, (h, w) in enumerate(sizes):
            merged = PromptBoxes.merge(parts[b]) if parts[b] else PromptBoxes.empty()
            if merged.masks is None:
                merged.masks = RleMasks([], h, w)
            merged.scores = np.asarray(merged.scores, dtype=np.float64)
            out_boxes.append(merged)
        return out_boxes
