"""Grounding DINO through transformers: one merged caption per image, batched images, token-span mapping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options, PromptBoxes
from autolabel.backends.preprocess import FastInputs, ModelInputs
from autolabel.backends.torch_utils import check_finite, load_backend_model, processor_device, sync_fn
from autolabel.geometry import clip_xyxy, cxcywh_norm_to_xyxy

DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"


@dataclass(frozen=True)
class Caption:
    """One caption holding several prompts: `spans[k]` = (first, last+1) token indices of prompt `prompt_ids[k]`."""

    text: str
    input_ids: list[int]
    prompt_ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]


def plan_captions(tokenizer: Any, prompts: Sequence[str], max_tokens: int) -> list[Caption]:
    """Pack prompts into as few captions as fit `max_tokens` (special tokens included), in order.

    The caption is "p1. p2. p3." as Grounding DINO expects; each prompt's token span is found from the
    tokenizer's character offsets, so mapping never depends on substring search.
    """
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    groups: list[list[int]] = [[]]
    used = 2  # [CLS] ... [SEP]
    for i, n in enumerate(lengths):
        need = n + 1  # the prompt and its "."
        if need + 2 > max_tokens:
            raise ValueError(f"prompt '{prompts[i]}' is {n} tokens; the text encoder takes at most {max_tokens - 3}")
        if groups[-1] and used + need > max_tokens:
            groups.append([])
            used = 2
        groups[-1].append(i)
        used += need
    return [_make_caption(tokenizer, prompts, g) for g in groups]


def _make_caption(tokenizer: Any, prompts: Sequence[str], ids: list[int]) -> Caption:
    text, char_spans = "", []
    for i in ids:
        start = len(text)
        text += prompts[i]
        char_spans.append((start, len(text)))
        text += ". "
    text = text.rstrip()
    enc = tokenizer(text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    spans = []
    for (cs, ce), i in zip(char_spans, ids):
        toks = [t for t, (a, b) in enumerate(offsets) if b > a and a >= cs and b <= ce]
        if not toks:
            raise ValueError(f"prompt '{prompts[i]}' produced no tokens")
        spans.append((toks[0], toks[-1] + 1))
    return Caption(text, list(enc["input_ids"]), tuple(ids), tuple(spans))


def assign_queries(
    probs: np.ndarray, caption: Caption, min_score: float, token_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Map each query to the prompt whose token span it scores highest on; that span score is its score.

    `probs`: (Q, T) sigmoid token scores of one image. A query is kept when its score reaches
    `min_score` (the candidate floor). A query whose best token reaches `min_score` but whose best
    prompt span does not fired on something that is no prompt (the "." separators, [CLS]/[SEP]): it is
    dropped and counted under that token's text. Returns (query indices, prompt ids, scores, unmatched).
    """
    n_tok = len(caption.input_ids)
    p = probs[:, :n_tok]
    best_any = p.max(axis=1)
    span_scores = np.stack([p[:, a:b].max(axis=1) for a, b in caption.spans], axis=1)  # (Q, K)
    best_k = span_scores.argmax(axis=1)
    best = span_scores[np.arange(len(p)), best_k]
    candidate = best_any >= min_score
    keep = candidate & (best >= min_score)
    unmatched: dict[str, int] = {}
    for q in np.flatnonzero(candidate & (best < min_score)):
        name = token_names[int(p[q].argmax())]
        unmatched[name] = unmatched.get(name, 0) + 1
    q_idx = np.flatnonzero(keep)
    prompt_ids = np.asarray(caption.prompt_ids, dtype=np.int64)[best_k[q_idx]]
    return q_idx, prompt_ids, best[q_idx].astype(np.float64), unmatched


class GroundingDinoDetector:
    """Grounding DINO: one caption per image holding every prompt (chunked only at the token limit)."""

    kind = "detector"
    has_scores = True
    segments = False
    OPTIONS: ClassVar[Options] = {}
    BACKEND = "grounding_dino"
    DEFAULT_MODEL = DEFAULT_MODEL
    MODEL_CLASS = "GroundingDinoForObjectDetection"

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any) -> None:
        self.processor = processor
        self.model = model
        self.device = device
        self.dtype = dtype
        self.max_tokens = int(getattr(model.config, "max_text_len", 256))
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        self._plans: dict[tuple[str, ...], list[Caption]] = {}
        self._fast = FastInputs.for_processor(processor.image_processor, device)

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> GroundingDinoDetector:
        processor, model = load_backend_model(
            cls, cfg, "detector", "AutoModelForZeroShotObjectDetection", device, dtype
        )
        return cls(processor, model, device, dtype)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """Every prompt must fit the text encoder (256 tokens with [CLS], [SEP] and its '.')."""
        from autolabel.errors import UsageError

        try:
            self.captions(prompts)
        except ValueError as e:
            raise UsageError(
                f"{self.BACKEND}: {e}", hint="shorten the prompt (or split it into several prompts of the same class)"
            ) from None

    def captions(self, prompts: Sequence[str]) -> list[Caption]:
        key = tuple(prompts)
        if key not in self._plans:
            self._plans[key] = plan_captions(self.processor.tokenizer, prompts, self.max_tokens)
        return self._plans[key]

    def prepare(self, images: Sequence[np.ndarray]) -> ModelInputs:
        """Pixel values and mask of the batch (CPU side of the pipeline; on a GPU the resize runs there)."""
        if self._fast is not None:
            return self._fast(images)
        enc = self.processor.image_processor(images=list(images), return_tensors="pt", **processor_device(self.device))
        return ModelInputs(enc["pixel_values"], enc["pixel_mask"])

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        """images: RGB uint8 (H, W, 3). One forward per caption chunk for the whole batch of images."""
        return self.detect_prepared(self.prepare(images), [img.shape[:2] for img in images], prompts, min_score)

    def detect_prepared(
        self, inputs: ModelInputs, shapes: Sequence[tuple[int, int]], prompts: Sequence[str], min_score: float
    ) -> list[PromptBoxes]:
        import torch

        captions = self.captions(prompts)
        pixel_values = inputs.pixel_values.to(self.device, self.dtype)
        assert inputs.pixel_mask is not None, "Grounding DINO's processor makes a pixel mask"
        pixel_mask = inputs.pixel_mask.to(self.device)
        parts: list[list[PromptBoxes]] = [[] for _ in shapes]
        for cap in captions:
            ids = torch.tensor([cap.input_ids] * len(shapes), device=self.device)
            with torch.inference_mode(), self.stats.timed(self._sync):
                out = self.model(
                    pixel_values=pixel_values,
                    pixel_mask=pixel_mask,
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    token_type_ids=torch.zeros_like(ids),
                )
            probs = out.logits.float().sigmoid().cpu().numpy()
            boxes = out.pred_boxes.float().cpu().numpy()
            check_finite(self.BACKEND, boxes, probs)
            names = self.processor.tokenizer.convert_ids_to_tokens(cap.input_ids)
            for b, (h, w) in enumerate(shapes):
                q, pid, scores, unmatched = assign_queries(probs[b], cap, min_score, names)
                xyxy = clip_xyxy(cxcywh_norm_to_xyxy(boxes[b][q], w, h), w, h)
                parts[b].append(PromptBoxes(xyxy, scores, pid, unmatched=unmatched))
        return [PromptBoxes.merge(p) for p in parts]


class MMGroundingDinoDetector(GroundingDinoDetector):
    """MM-Grounding-DINO and LLMDet checkpoints (transformers `MMGroundingDinoForObjectDetection`): the
    same inputs and outputs as Grounding DINO, so the same single caption and token-span mapping."""

    BACKEND = "mm_grounding_dino"
    DEFAULT_MODEL = "iSEE-Laboratory/llmdet_tiny"
    MODEL_CLASS = "MMGroundingDinoForObjectDetection"
