"""SAM 2 / 2.1 through transformers: one image embedding per image, all its boxes in one decoder call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from autolabel.backends.base import ForwardStats, Options
from autolabel.backends.preprocess import FastInputs, ModelInputs
from autolabel.backends.torch_utils import load_backend_model, sync_fn
from autolabel.backends.upsample import UPSAMPLE_CHUNK, logits_to_rles
from autolabel.types import RleMasks

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"


class Sam2Segmenter:
    kind = "segmenter"
    OPTIONS: ClassVar[Options] = {}
    DEFAULT_MODEL = DEFAULT_MODEL
    MODEL_CLASS = "Sam2Model"
    BACKEND = "sam2"
    FAST_INPUTS = True  # resize/normalise written into one batch tensor (bit-identical to the processor)

    def __init__(
        self, processor: Any, model: Any, device: str, dtype: Any, multimask: bool, mask_threshold: float
    ) -> None:
        self.processor = processor
        self.model = model
        self.device = device
        self.dtype = dtype
        self.multimask = multimask
        self.mask_threshold = mask_threshold
        self.stats = ForwardStats()
        self._sync = sync_fn(device)
        self._fast = FastInputs.for_processor(processor.image_processor, device, self.FAST_INPUTS)

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Sam2Segmenter:
        processor, model = load_backend_model(cls, cfg, "segmenter", "AutoModelForMaskGeneration", device, dtype)
        return cls(processor, model, device, dtype, cfg.multimask, cfg.mask_threshold)

    def prepare(self, images: Sequence[np.ndarray]) -> ModelInputs:
        """The batch's pixel values (CPU side of the pipeline; on a GPU the resize runs there)."""
        if self._fast is not None:
            return self._fast(images)
        pixel_values = self.processor.image_processor(
            images=list(images), return_tensors="pt", **self.preprocess_kwargs()
        )["pixel_values"]
        return ModelInputs(pixel_values)

    def embed(self, images: Sequence[np.ndarray]) -> Any:
        """Image embeddings for a batch: SAM 2 returns a list of FPN levels, each (B, C, h, w)."""
        inputs = self.prepare(images)
        return self.embed_pixels(inputs.pixel_values)

    def embed_pixels(self, pixel_values: Any) -> Any:
        import torch

        with torch.inference_mode(), self.stats.timed(self._sync):
            return self.model.get_image_embeddings(pixel_values.to(self.device, self.dtype))

    def preprocess_kwargs(self) -> dict[str, Any]:
        from autolabel.backends.torch_utils import processor_device

        return processor_device(self.device)

    def select_embedding(self, emb: Any, j: int) -> Any:
        return [e[j : j + 1] for e in emb]

    def decode(self, emb_j: Any, boxes: np.ndarray, height: int, width: int) -> RleMasks:
        """All boxes (N, 4) of one image in one decoder call → N masks of (H, W) as RLE."""
        return self.finish(self.decode_lowres(emb_j, boxes, height, width), height, width)

    def decode_lowres(self, emb_j: Any, boxes: np.ndarray, height: int, width: int) -> Any:
        """All boxes (N, 4) of one image in one decoder call → (N, 1, h, w) low-res mask logits."""
        import torch

        input_boxes = self.model_boxes(boxes, height, width).to(self.device, self.dtype)
        with torch.inference_mode(), self.stats.timed(self._sync):
            out = self.model(**self.decoder_inputs(emb_j), input_boxes=input_boxes, multimask_output=self.multimask)
        pred = out.pred_masks[0]  # (N, M, h, w) low-res logits; checked for inf/NaN in `finish`
        if pred.shape[1] > 1:  # multimask: the mask with the best predicted IoU per box
            best = out.iou_scores[0].argmax(dim=-1)
            pred = pred[torch.arange(len(pred)), best][:, None]
        return pred

    def decoder_inputs(self, emb_j: Any) -> dict[str, Any]:
        """What the mask decoder takes besides the boxes (SAM-HQ adds its ViT features)."""
        return {"image_embeddings": emb_j}

    def model_boxes(self, boxes: np.ndarray, height: int, width: int) -> Any:
        """(N, 4) xyxy pixels → (1, N, 4) tensor in the model's input frame."""
        enc = self.processor(input_boxes=[boxes.tolist()], original_sizes=[[height, width]], return_tensors="pt")
        return enc["input_boxes"]

    def post_process(self, part: Any, height: int, width: int) -> Any:
        """(1, n, 1, h, w) low-res logits → (n, 1, H, W) bool at the original size: transformers' own
        post-processing (the reference `finish` is tested against)."""
        return self.processor.post_process_masks(
            part, [[height, width]], mask_threshold=self.mask_threshold, binarize=True
        )[0]

    def image_frame(self, part: Any, height: int, width: int) -> Any:
        """(n, 1, h, w) low-res logits → (n, h', w') logits whose frame is the whole image (SAM 2's
        low-res masks already are; SAM pads)."""
        return part[:, 0]

    def finish(self, pred: Any, height: int, width: int) -> RleMasks:
        """Low-res logits → full-size masks as RLE, upsampled only where each mask can be (a few at a
        time: memory stays bounded whatever the number of boxes or the photo size)."""
        import torch

        if pred is None or not len(pred):
            return RleMasks([], height, width)
        if not bool(torch.isfinite(pred).all()):  # here, off the model thread (and no GPU sync there)
            from autolabel.backends.torch_utils import check_finite

            check_finite(self.BACKEND, pred.float().cpu().numpy())
        rles: list[dict] = []
        for start in range(0, len(pred), UPSAMPLE_CHUNK):
            frame = self.image_frame(pred[start : start + UPSAMPLE_CHUNK].float(), height, width)
            rles += logits_to_rles(frame, height, width, self.mask_threshold)
        return RleMasks(rles, height, width)

    def segment_raw(
        self, inputs: ModelInputs, shapes: Sequence[tuple[int, int]], boxes: Sequence[np.ndarray]
    ) -> list[Any]:
        """Embeds only images that have boxes, in one batch; then one decoder call per image →
        low-res logits per image (None without boxes)."""
        out: list[Any] = [None] * len(shapes)
        todo = [i for i, b in enumerate(boxes) if len(b)]
        if not todo:
            return out
        pixel_values = inputs.pixel_values if len(todo) == len(shapes) else inputs.pixel_values[todo]
        emb = self.embed_pixels(pixel_values)
        for j, i in enumerate(todo):
            h, w = shapes[i]
            out[i] = self.decode_lowres(self.select_embedding(emb, j), np.asarray(boxes[i], dtype=np.float64), h, w)
        return out

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[RleMasks]:
        """prepare → segment_raw → finish, in one go (the local executor runs the three in a pipeline).
        Masks come back as RLE (never an (N, H, W) stack of a whole batch)."""
        shapes = [(int(img.shape[0]), int(img.shape[1])) for img in images]
        raw = self.segment_raw(self.prepare(images), shapes, boxes)
        return [self.finish(r, h, w) for r, (h, w) in zip(raw, shapes)]
