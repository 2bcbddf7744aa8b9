"""`tracker: sam2` with a tiny random-weight Sam2VideoModel built from a config (the streaming path): objects
added mid-session without a reset, the session pruned as it goes with masks bit-identical to an unpruned
session, and what it keeps bounded whatever the clip's length."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_models import tiny_sam2_video
from tests.video.clips import keyframe_detections, scene

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _track(model: object, processor: object, frames: int, prune: bool) -> tuple[list[dict], object]:
    from autolabel.video.sam2_track import Sam2Tracker

    tracker = Sam2Tracker(
        model, processor, prune=prune, min_area=0, full_frame=1.01, max_negative=10**6, max_missed=10**6
    )
    out = [tracker.step(t, scene(t)[0], keyframe_detections(t) if t % 8 == 0 else None) for t in range(frames)]
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


def test_ended_objects_leave_the_session_and_the_others_masks_do_not_change() -> None:
    from autolabel.video.sam2_track import Sam2Tracker

    model, processor = tiny_sam2_video()

    def run(drop: bool) -> tuple[list[dict], list[int], Sam2Tracker]:
        tracker = Sam2Tracker(model, processor, max_missed=1, min_area=0, full_frame=1.01, drop_ended=drop)
        out, sizes = [], []
        for t in range(17):
            out.append(tracker.step(t, scene(t)[0], keyframe_detections(t) if t % 4 == 0 else None))
            sizes.append(tracker.session.get_obj_num())
        return out, sizes, tracker

    dropped, sizes, tracker = run(True)
    kept, kept_sizes, _ = run(False)
    assert [sorted(f) for f in dropped] == [sorted(f) for f in kept]
    assert all(np.array_equal(a[oid], b[oid]) for a, b in zip(dropped, kept) for oid in a)  # bit-identical
    assert tracker.next_id > 6 and sizes[-1] == len(tracker.live) < kept_sizes[-1]  # objects came and went
    assert max(sizes) <= 2 * len(keyframe_detections(0))  # the session holds the live objects only


def test_a_saved_state_resumes_bit_identical_and_a_foreign_or_damaged_one_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from autolabel.video.sam2_track import Sam2Tracker
    from autolabel.video.session_state import load_state, save_state

    model, processor = tiny_sam2_video()

    def tracker() -> Sam2Tracker:
        return Sam2Tracker(model, processor, min_area=0, full_frame=1.01, max_negative=10**6)

    def step(tr: Sam2Tracker, t: int) -> dict:
        return tr.step(t, scene(t)[0], keyframe_detections(t) if t % 4 == 0 else None)

    whole = tracker()
    full = [step(whole, t) for t in range(10)]
    first = tracker()
    for t in range(6):
        step(first, t)
    stem = tmp_path / ".track-state"
    save_state(stem, first, "clip-a", {"frame": 6})
    assert load_state(stem, tracker(), "clip-b") is None  # another clip's (or version's) state
    later = tracker()
    assert load_state(stem, later, "clip-a") == {"frame": 6}
    for t in range(6, 10):
        got = step(later, t)
        assert sorted(got) == sorted(full[t]) and all(np.array_equal(got[o], full[t][o]) for o in got)
    data = bytearray(stem.with_suffix(".safetensors").read_bytes())
    data[-1] ^= 0xFF
    stem.with_suffix(".safetensors").write_bytes(bytes(data))
    assert load_state(stem, tracker(), "clip-a") is None  # damaged: tracked from the start instead
