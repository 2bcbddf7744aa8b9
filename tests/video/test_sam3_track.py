"""`tracker: sam3` with a tiny random-weight Sam3VideoModel built from a config (224 px): SAM 3 follows the
prompts through a synthetic clip in one streaming session, objects keep their ids, the session is pruned as
it goes with masks bit-identical to an unpruned one, and what it keeps does not grow with the clip."""

from __future__ import annotations

import numpy as np
import pytest

from tests.video.clips import scene

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow
PROMPTS = ["red square", "blue square", "green square"]


@pytest.fixture(scope="module")
def sam3_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    from transformers import AutoProcessor, Sam3VideoModel

    from tests.tiny_models import build_tiny_sam3_video

    path = build_tiny_sam3_video(tmp_path_factory.mktemp("models") / "sam3-video")
    return Sam3VideoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def _track(video: tuple[object, object], frames: int, prune: bool) -> tuple[list, object]:
    from autolabel.video.sam3_track import Sam3Tracker

    tracker = Sam3Tracker(video[0], video[1], PROMPTS, prune=prune, max_objects=6)
    return [tracker.step(t, scene(t)[0]) for t in range(frames)], tracker


def test_sam3_follows_the_prompts_and_prunes_with_bit_identical_masks(sam3_video: tuple[object, object]) -> None:
    pruned, tracker = _track(sam3_video, 40, prune=True)
    full, _ = _track(sam3_video, 40, prune=False)
    assert pruned[0].masks and all(set(f.masks) == set(g.masks) for f, g in zip(pruned, full))
    for f, g in zip(pruned, full):
        for oid in f.masks:
            assert np.array_equal(f.masks[oid], g.masks[oid]) and f.scores[oid] == g.scores[oid]
            assert f.prompts[oid] in range(len(PROMPTS))
    assert set(pruned[0].masks) & set(pruned[-1].masks)  # the first frame's objects are followed to the end
    session = tracker.session  # type: ignore[attr-defined]
    for per_obj in session.output_dict_per_obj.values():
        assert len(per_obj["non_cond_frame_outputs"]) <= tracker.keep + 1  # type: ignore[attr-defined]
    held = [f for f, px in (session.processed_frames or {}).items() if px.numel()]
    assert held == [39]  # the pixels of the last frame only


def test_a_scene_cut_starts_a_new_session_and_ids_go_on(sam3_video: tuple[object, object]) -> None:
    from autolabel.video.sam3_track import Sam3Tracker

    tracker = Sam3Tracker(sam3_video[0], sam3_video[1], PROMPTS, max_objects=6)
    before = tracker.step(0, scene(0)[0])
    tracker.cut()
    after = tracker.step(0, scene(1)[0])
    assert before.masks and after.masks and min(after.masks) > max(before.masks)
