"""A vision-language model as a verifier (transformers `AutoModelForImageTextToText`): for each doubtful
candidate, the crop around its box and a yes/no question about its class; the answer is the probability
of "yes" against "no" in the model's *first* answer token (one forward pass, no generation).

Chat models (SmolVLM, Qwen2.5-VL, …) get the question through their processor's chat template; models
without one (Florence-2) get it as the text beside the image, with the decoder started as `generate`
would start it. The default, SmolVLM-256M-Instruct (Apache-2.0, 256 M parameters), is the smallest that
answers such questions usefully; Qwen2.5-VL-3B-Instruct is stronger and slower (`verifier.model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options, option_values
from autolabel.backends.torch_utils import load_backend_model, sync_fn

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
YES, NO = ("yes", "Yes", " yes", " Yes"), ("no", "No", " no", " No")


def crop(image: np.ndarray, xyxy: np.ndarray, context: float) -> np.ndarray:
    """The box grown by `context` (a fraction of its size) on each side, within the image; at least 2 px."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    dx, dy = (x1 - x0) * context, (y1 - y0) * context
    a, b = int(max(0, np.floor(x0 - dx))), int(max(0, np.floor(y0 - dy)))
    c, d = int(min(w, np.ceil(x1 + dx))), int(min(h, np.ceil(y1 + dy)))
    return image[b : max(d, b + 2), a : max(c, a + 2)]


def token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """The first token of each spelling of an answer word (unique, known to the tokenizer)."""
    out: list[int] = []
    for word in words:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if ids and ids[0] not in out and ids[0] != getattr(tokenizer, "unk_token_id", None):
            out.append(int(ids[0]))
    return out


class VlmVerifier:
    kind = "verifier"
    BACKEND, MODEL_CLASS, DEFAULT_MODEL = "vlm", None, DEFAULT_MODEL
    OPTIONS: ClassVar[Options] = {"context": 0.1}

    def __init__(self, processor: Any, model: Any, device: str, dtype: Any, context: float = 0.1) -> None:
        self.processor, self.model = processor, model
        self.device, self.dtype, self.context = device, dtype, context
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        tok = processor.tokenizer
        yes, no = token_ids(tok, YES), token_ids(tok, NO)
        self.yes, self.no = [i for i in yes if i not in no], [i for i in no if i not in yes]  # ' ' may start both
        if not self.yes or not self.no:
            from autolabel.errors import ModelLoadError

            raise ModelLoadError("verifier: the model's tokenizer has no token for 'yes' or 'no'")
        self.chat = getattr(processor, "chat_template", None) is not None

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> VlmVerifier:
        processor, model = load_backend_model(cls, cfg, "verifier", "AutoModelForImageTextToText", device, dtype)
        return cls(processor, model, device, dtype, float(option_values(cls.OPTIONS, cfg.options)["context"]))

    def verify(self, image: np.ndarray, boxes: np.ndarray, questions: Sequence[str]) -> np.ndarray:
        """image: RGB uint8 (H, W, 3); boxes: (K, 4) xyxy pixels; one question per box → P(yes) (K,)."""
        if not len(boxes):
            return np.zeros((0,))
        crops = [crop(image, b, self.context) for b in boxes]
        logits = self._first_token_logits(crops, list(questions))
        yes = np.logaddexp.reduce(logits[:, self.yes], axis=1)
        no = np.logaddexp.reduce(logits[:, self.no], axis=1)
        return 1.0 / (1.0 + np.exp(no - yes))

    def _inputs(self, crops: list[np.ndarray], questions: list[str]) -> Any:
        if self.chat:
            texts = [
                self.processor.apply_chat_template(
                    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                    add_generation_prompt=True,
                )
                for q in questions
            ]
            return self.processor(text=texts, images=[[c] for c in crops], return_tensors="pt", padding=True)
        return self.processor(text=questions, images=crops, return_tensors="pt", padding=True)

    def _first_token_logits(self, crops: list[np.ndarray], questions: list[str]) -> np.ndarray:
        """(K, vocab) float logits of the first answer token for each crop and question."""
        import torch

        enc = self._inputs(crops, questions)
        enc = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in enc.items()}
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.dtype)
        kwargs: dict[str, Any] = {}
        if getattr(self.model.config.get_text_config(), "is_encoder_decoder", False):
            kwargs["decoder_input_ids"] = torch.tensor([self._decoder_start()] * len(crops), device=self.device)
        with torch.inference_mode(), self.stats.timed(self._sync):
            out = self.model(**enc, **kwargs)
        logits = out.logits[:, -1, :]
        if not kwargs and "attention_mask" in enc and not bool((enc["attention_mask"][:, -1] == 1).all()):
            last = enc["attention_mask"].sum(dim=1) - 1  # right padding: the last real token of each row
            logits = out.logits[torch.arange(len(crops)), last, :]
        return logits.float().cpu().numpy()

    def _decoder_start(self) -> list[int]:
        """An encoder-decoder's first decoder tokens, as `generate` starts them (start, then a forced BOS)."""
        gen, text = self.model.generation_config, self.model.config.get_text_config()
        start = gen.decoder_start_token_id if gen.decoder_start_token_id is not None else text.decoder_start_token_id
        forced = gen.forced_bos_token_id
        return [int(start)] + ([int(forced)] if forced is not None else [])
