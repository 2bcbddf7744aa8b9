"""`tracker: sam2` with a tiny random-weight Sam2VideoModel built from a config (the streaming path): objects
added mid-session without a reset, the session pruned as it goes with masks bit-identical to an unpruned
session, and what it keeps bounded whatever the clip's length."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel.types import Detections
from tests.video.clips import scene

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow
S = 256  # the tiny model's input size


def tiny_sam2_video() -> tuple[object, object]:
    from transformers import (
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VisionConfig,
    )
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    h = 128  # > 64: the memory encoder's 64 output channels are hard-coded in places
    backbone = Sam2HieraDetConfig(
        hidden_size=12,
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        blocks_per_stage=[1, 1, 2, 1],
        global_attention_blocks=[3],
        image_size=[S, S],
    )
    cfg = Sam2VideoConfig(
        vision_config=Sam2VisionConfig(
            backbone_config=backbone,
            backbone_channel_list=[96, 48, 24, 12],
            fpn_hidden_size=h,
            backbone_feature_sizes=[[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]],
        ),
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=h, image_size=S, mask_input_channels=8),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(
            hidden_size=h, mlp_dim=256, num_attention_heads=4, iou_head_hidden_dim=32
        ),
        image_size=S,
        memory_attention_hidden_size=h,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[S // 16, S // 16],
        memory_encoder_hidden_size=h,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=h,
        memory_fuser_embed_dim=h,
        memory_fuser_intermediate_dim=256,
        memory_fuser_num_layers=1,
    )
    torch.manual_seed(0)
    model = Sam2VideoModel(cfg).eval()
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size={"height": S, "width": S}),
        video_processor=Sam2VideoVideoProcessor(size={"height": S, "width": S}),
    )
    return model, processor


def _keyframe(t: int) -> Detections:
    _, boxes = scene(t)
    xyxy = np.asarray(list(boxes.values()), dtype=np.float64).reshape(-1, 4)
    return Detections(xyxy, np.zeros(len(xyxy), np.int64), np.full(len(xyxy), 0.9), ["square"] * len(xyxy))


def _track(model: object, processor: object, frames: int, prune: bool) -> tuple[list[dict], object]:
    from autolabel.video.sam2_track import Sam2Tracker

    tracker = Sam2Tracker(
        model, processor, prune=prune, min_area=0, full_frame=1.01, max_negative=10**6, max_missed=10**6
    )
    out = [tracker.step(t, scene(t)[0], _keyframe(t) if t % 8 == 0 else None) for t in range(frames)]
    return out, tracker


def test_the_session_is_pruned_as_it_goes_with_bit_identical_masks() -> None:
    model, processor = tiny_sam2_video()
    pruned, tracker = _track(model, processor, 30, prune=True)
    full, _ = _track(model, processor, 30, prune=False)
    assert [sorted(f) for f in pruned] == [sorted(f) for f in full]
    for a, b in zip(pruned, full):
        for oid in a:
            assert np.array_equal(a[oid], b[oid])
    session = tracker.session
    assert 3 in pruned[1] and 1 in pruned[29]  # the first keyframe's objects are still tracked at the end
    assert max(max(f, default=0) for f in pruned) > 3  # later keyframes added objects to the same session
    for per_obj in session.output_dict_per_obj.values():
        assert len(per_obj["non_cond_frame_outputs"]) <= tracker.keep + 1
        assert not any("high_res_masks" in o for o in per_obj["non_cond_frame_outputs"].values())
    assert len(session.processed_frames or {}) <= 1


def test_what_the_session_keeps_per_object_does_not_grow_with_the_clip() -> None:
    model, processor = tiny_sam2_video()

    def most_kept(frames: int) -> tuple[int, int]:
        _, tracker = _track(model, processor, frames, prune=True)
        per_obj = tracker.session.output_dict_per_obj.values()
        return max(len(p["non_cond_frame_outputs"]) for p in per_obj), len(tracker.session.processed_frames or {})

    short, long = most_kept(36), most_kept(72)
    assert short == long  # twice the clip, the same memory per object: only the model's windows are kept
    assert long[0] <= 18 and long[1] <= 1
