"""SAM 2 / 2.1 as a video model (`tracker: sam2`): transformers' `Sam2VideoModel` from the segmenter's model
(a hub id or a local directory: the image checkpoints hold the memory modules too) and a streaming
`Sam2VideoProcessor` built around the checkpoint's own image processor (hub checkpoints ship no video
processor config)."""

from __future__ import annotations

from typing import Any

from autolabel.backends.torch_utils import load_pretrained
from autolabel.errors import ModelLoadError


def load_sam2_video(ref: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """(Sam2VideoModel on `device` in eval, Sam2VideoProcessor)."""
    from transformers import AutoConfig, Sam2ImageProcessor, Sam2VideoModel, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    (config,) = load_pretrained(ref, "segmenter", "--segmenter-model", [AutoConfig.from_pretrained])
    if config.model_type not in ("sam2", "sam2_video"):
        raise ModelLoadError(
            f"segmenter model '{ref}' is a {config.model_type} checkpoint; tracker: sam2 needs a SAM 2 one",
            hint="use a SAM 2 / 2.1 checkpoint (e.g. facebook/sam2.1-hiera-tiny), or video.tracker: detect",
        )
    image_processor, model = load_pretrained(
        ref, "segmenter", "--segmenter-model", [Sam2ImageProcessor.from_pretrained, Sam2VideoModel.from_pretrained]
    )
    video_processor = Sam2VideoVideoProcessor(size=dict(image_processor.size))
    processor = Sam2VideoProcessor(image_processor=image_processor, video_processor=video_processor)
    return model.to(device=device, dtype=dtype).eval(), processor


def load_sam3_video(ref: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """`tracker: sam3`: (Sam3VideoModel on `device` in eval, Sam3VideoProcessor) from `video.model` (default:
    the detector's, facebook/sam3, whose checkpoint holds the video model's detector and tracker)."""
    from transformers import AutoProcessor, Sam3VideoModel

    option = "video.model (ontology)"
    processor, model = load_pretrained(
        ref, "video", option, [AutoProcessor.from_pretrained, Sam3VideoModel.from_pretrained]
    )
    if type(processor).__name__ != "Sam3VideoProcessor":
        from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor

        processor = Sam3VideoProcessor(
            image_processor=processor.image_processor,
            video_processor=getattr(processor, "video_processor", None) or _video_processor(processor),
            tokenizer=processor.tokenizer,
        )
    return model.to(device=device, dtype=dtype).eval(), processor


def _video_processor(processor: Any) -> Any:
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    return Sam2VideoVideoProcessor(size=dict(processor.image_processor.size))
