"""Florence-2 through transformers' native Florence2ForConditionalGeneration.

Two tasks, set with `detector.task`:

- `ovd` (default): `<OPEN_VOCABULARY_DETECTION>` once per prompt, batched over images. Every box comes
  back for the prompt that was asked, so mapping to the ontology is exact — at K generate passes per batch.
- `grounding`: `<CAPTION_TO_PHRASE_GROUNDING>` with all prompts in one caption: one pass per batch, but
  the model answers with free phrases ("a red car") that are mapped back to prompts by normalised text
  (exact, then whole-word containment); phrases that match no prompt are dropped and counted.

Florence-2 gives no scores: confidence is None end to end, never a fake 1.0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options, PromptBoxes, option_values
from autolabel.backends.torch_utils import load_backend_model, sync_fn
from autolabel.geometry import clip_xyxy
from autolabel.types import normalize_prompt

DEFAULT_MODEL = "florence-community/Florence-2-base"
TASKS = {"ovd": "<OPEN_VOCABULARY_DETECTION>", "grounding": "<CAPTION_TO_PHRASE_GROUNDING>"}
_ARTICLES = re.compile(r"^(a|an|the)\s+")


def _norm_phrase(text: str) -> str:
    return _ARTICLES.sub("", normalize_prompt(re.sub(r"[^\w\s-]", " ", text)))


def match_phrase(phrase: str, prompts: Sequence[str]) -> int | None:
    """Index of the prompt a grounded phrase stands for: equal after normalising (case, articles,
    punctuation), else the longest prompt contained in the phrase as whole words; None when none is."""
    p = _norm_phrase(phrase)
    normed = [_norm_phrase(q) for q in prompts]
    if p in normed:
        return normed.index(p)
    hits = [(len(q), -i, i) for i, q in enumerate(normed) if q and re.search(rf"\b{re.escape(q)}\b", p)]
    return max(hits)[2] if hits else None


class Florence2Detector:
    kind = "detector"
    BACKEND, MODEL_CLASS, DEFAULT_MODEL = "florence2", "Florence2ForConditionalGeneration", DEFAULT_MODEL
    OPTIONS: ClassVar[Options] = {"task": ("ovd", tuple(TASKS)), "max_new_tokens": 1024}
    has_scores = False
    segments = False

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any, task: str, max_new_tokens: int) -> None:
        if task not in TASKS:
            from autolabel.errors import UsageError

            raise UsageError(f"detector.task '{task}' is not a Florence-2 task; valid: {', '.join(TASKS)}")
        self.processor, self.model = processor, model
        self.device, self.dtype = device, dtype
        self.task = task
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs: dict[str, Any] = {"num_beams": 3, "do_sample": False}
        self.stats = ForwardStats()
        self._sync = sync_fn(device)

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Florence2Detector:
        processor, model = load_backend_model(cls, cfg, "detector", "AutoModelForImageTextToText", device, dtype)
        opts = option_values(cls.OPTIONS, cfg.options)
        return cls(processor, model, device, dtype, opts["task"], int(opts["max_new_tokens"]))

    def _generate(self, images: Sequence[np.ndarray], text: str) -> list[dict[str, Any]]:
        """One batched generate call for one task text; returns the parsed result per image."""
        import torch

        task = TASKS[self.task]
        enc = self.processor(text=[task + text] * len(images), images=list(images), return_tensors="pt")
        with torch.inference_mode(), self.stats.timed(self._sync):
            ids = self.model.generate(
                input_ids=enc["input_ids"].to(self.device),
                pixel_values=enc["pixel_values"].to(self.device, self.dtype),
                max_new_tokens=self.max_new_tokens,
                **self.generate_kwargs,
            )
        texts = self.processor.batch_decode(ids, skip_special_tokens=False)  # keep the <loc_*> tokens
        out = []
        for t, img in zip(texts, images):
            t = t.replace(self.processor.tokenizer.pad_token or "<pad>", "")
            parsed = self.processor.post_process_generation(t, task=task, image_size=(img.shape[1], img.shape[0]))
            out.append(parsed[task])
        return out

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str], min_score: float) -> list[PromptBoxes]:
        boxes: list[list[list[float]]] = [[] for _ in images]
        pidx: list[list[int]] = [[] for _ in images]
        unmatched: list[dict[str, int]] = [{} for _ in images]
        if self.task == "ovd":
            for k, prompt in enumerate(prompts):
                for b, res in enumerate(self._generate(images, prompt)):
                    boxes[b] += res.get("bboxes", [])
                    pidx[b] += [k] * len(res.get("bboxes", []))
        else:
            caption = ". ".join(prompts) + "."
            for b, res in enumerate(self._generate(images, caption)):
                for box, phrase in zip(res.get("bboxes", []), res.get("labels", [])):
                    match = match_phrase(phrase, prompts)
                    if match is None:
                        unmatched[b][phrase] = unmatched[b].get(phrase, 0) + 1
                        continue
                    boxes[b].append(box)
                    pidx[b].append(match)
        out = []
        for b, img in enumerate(images):
            h, w = img.shape[:2]
            xyxy = clip_xyxy(np.asarray(boxes[b], dtype=np.float64).reshape(-1, 4), w, h)
            out.append(PromptBoxes(xyxy, None, np.asarray(pidx[b], dtype=np.int64), unmatched=unmatched[b]))
        return out
