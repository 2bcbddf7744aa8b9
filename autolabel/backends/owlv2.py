"""OWLv2 through transformers `Owlv2ForObjectDetection`: every prompt is a text query; one forward pass
per batch of images scores every predicted box against every query. Each box goes to its best query
(as transformers' own post-processing does), with that query's sigmoid score.

A prompt may also be given example boxes (`examples:` in the ontology): each example image is embedded
once, the predicted box that best overlaps the example box gives its class embedding (as OWL-ViT's
image-conditioned detection takes a query box's embedding), a prompt's examples are averaged into one
image query, and that query is scored by the same class head as the text queries (`set_examples`).
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
    EXAMPLES = True  # takes example boxes (`set_examples`)

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        self._text: dict[tuple[str, ...], Any] = {}
        self._examples: tuple[list[int], Any] | None = None  # (prompt of each image query, queries (E, D))
        self._text_off: set[int] = set()

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

    def set_examples(self, examples: dict[int, list[tuple[np.ndarray, np.ndarray]]], text_off: set[int]) -> None:
        """Example boxes per prompt index: [(RGB uint8 image, xyxy pixel box), ...]; prompts in `text_off` are
        found by their examples alone (their text query is not scored)."""
        if not examples:
            self._examples, self._text_off = None, set()
            return
        prompts, queries = [], []
        for k, items in sorted(examples.items()):
            q = sum(self.example_query(img, box) for img, box in items)
            queries.append(q / q.norm(dim=-1, keepdim=True))
            prompts.append(k)
        import torch

        self._examples, self._text_off = (prompts, torch.stack(queries)), set(text_off)

    def example_query(self, image: np.ndarray, xyxy: np.ndarray) -> Any:
        """The class embedding (D,) of the predicted box of `image` that best overlaps the example box."""
        import torch

        from autolabel.geometry import box_iou

        pv = self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        with torch.inference_mode(), self.stats.timed(self._sync):
            fm = self.model.image_embedder(pixel_values=pv.to(self.device, self.dtype))[0]
            feats = fm.reshape(fm.shape[0], -1, fm.shape[-1])
            _, class_embeds = self.model.class_predictor(feats)
            boxes = self.model.box_predictor(feats, fm)
        h, w = image.shape[:2]
        pred = owl_boxes_to_xyxy(boxes[0].float().cpu().numpy(), w, h)
        best = int(np.argmax(box_iou(np.asarray(xyxy, dtype=np.float64).reshape(1, 4), pred)[0]))
        return class_embeds[0, best].float()

    def _with_examples(self, out: Any, n_prompts: int) -> tuple[Any, np.ndarray]:
        """(logits (B, boxes, text + image queries), the prompt each query stands for). The image queries go
        through the model's own class head on the batch's image features; text queries of prompts found by
        examples alone are left out."""
        import torch

        logits, query_prompt = out.logits.float(), np.arange(n_prompts)
        if self._examples is None:
            return logits, query_prompt
        prompts, queries = self._examples
        fm = out.image_embeds
        feats = fm.reshape(fm.shape[0], -1, fm.shape[-1])
        q = queries.to(feats.device, feats.dtype)[None].expand(feats.shape[0], -1, -1)
        ex_logits, _ = self.model.class_predictor(feats, q)
        if self._text_off:
            logits[..., sorted(self._text_off)] = float("-inf")
        return torch.cat([logits, ex_logits.float()], dim=-1), np.concatenate([query_prompt, prompts])

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        """images: RGB uint8 (H, W, 3). One forward pass for the batch and every prompt."""
        import torch

        pixel_values = self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        ids, mask = self._text_inputs(prompts, len(images))
        with torch.inference_mode(), self.stats.timed(self._sync):
            out = self.model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values.to(self.device, self.dtype))
            logits, query_prompt = self._with_examples(out, len(prompts))
        best = logits.max(dim=-1)
        scores = best.values.sigmoid().cpu().numpy()
        labels = query_prompt[best.indices.cpu().numpy()]
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
