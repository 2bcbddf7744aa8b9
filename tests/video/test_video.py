"""Video, `tracker: detect`: frames decoded and sampled as asked (timestamps from pts, variable frame rate,
rotation), odd files refused with the reason, and tracks measured against the known trajectories of a
synthetic clip with motmetrics (IDF1, ID switches)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autolabel.errors import ImageError
from autolabel.types import Detections
from autolabel.video.decode import Sampling, VideoError, _rotated, frames
from autolabel.video.mot import mot_lines
from autolabel.video.track import DetectTracker
from autolabel.video.tracks import kept_tracks, only_kept
from tests.video.clips import OTHER_SCENE, keyframe_detections, scene, write_clip

pytest.importorskip("av")
N = 36


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mkv"
    write_clip(path, [scene(t)[0] for t in range(N)])
    return path


def test_frames_are_exact_timed_by_pts_and_sampled(clip: Path, tmp_path: Path) -> None:
    got = list(frames(clip))
    assert [f.index for f in got] == list(range(N)) and got[7].time == pytest.approx(0.7)
    assert np.array_equal(got[9].image, scene(9)[0])  # FFV1 is lossless
    assert [f.index for f in frames(clip, Sampling(every=5, max_frames=4))] == [0, 5, 10, 15]
    assert [f.index for f in frames(clip, Sampling(fps=2.5))] == list(range(0, N, 4))
    vfr = tmp_path / "vfr.mkv"
    write_clip(vfr, [scene(t)[0] for t in range(5)], times=[0, 0.1, 0.35, 0.4, 1.0])
    assert [f.time for f in frames(vfr)] == pytest.approx([0, 0.1, 0.35, 0.4, 1.0])  # not index × fps
    assert [f.index for f in frames(vfr, Sampling(fps=4))] == [0, 2, 4]  # 0, ≥0.25 → 0.35, ≥0.6 → 1.0
    mp4 = tmp_path / "clip.MP4"
    write_clip(mp4, [scene(t)[0] for t in range(5)], codec="libx264")
    assert len(list(frames(mp4))) == 5


def test_rotation_follows_the_display_matrix() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert _rotated(img, 90).shape == (3, 2, 3) and np.array_equal(_rotated(img, 90), np.rot90(img))
    assert np.array_equal(_rotated(img, -90), np.rot90(img, 3)) and _rotated(img, 0) is img


def test_odd_videos_are_refused_with_the_reason(tmp_path: Path) -> None:
    import av

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoError, match=r"cannot (open|decode) the video"):
        list(frames(bad))
    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        list(frames(audio))
    empty = tmp_path / "empty.mkv"
    with av.open(str(empty), "w") as out:
        s = out.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "bgr0"
        out.start_encoding()  # the header, then no frame at all
    with pytest.raises(VideoError, match="no frame"):
        list(frames(empty))
    assert issubclass(VideoError, ImageError)  # skipped with the reason, like an unreadable image


def _tracked(clip: Path, tmp_path: Path, video: dict | None = None) -> list:  # type: ignore[type-arg]
    from autolabel.api import Labeler
    from tests.fakes import FakeDetector, FakeSegmenter

    ontology = {
        "ontology": {"red square": "square", "blue square": "square", "green square": "square"},
        "detector": {"backend": "tests.fakes:FakeDetector", "box_threshold": 0.3},
        "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
        **({"video": video} if video else {}),
    }
    labeler = Labeler(ontology, backends=(FakeDetector(), FakeSegmenter()), batch_size=4)
    return list(labeler.label_video(clip))


def test_tracks_keep_their_identity_measured_with_motmetrics(clip: Path, tmp_path: Path) -> None:
    if not hasattr(np, "asfarray"):  # motmetrics 1.4 (the last release) still calls it; NumPy 2 removed it
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    import motmetrics as mm

    out = _tracked(clip, tmp_path)
    assert len(out) == N
    acc = mm.MOTAccumulator(auto_id=True)
    for t, f in enumerate(out):
        _, truth = scene(t)
        gt_ids = list(truth)
        gt = np.array([[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in truth.values()]).reshape(-1, 4)
        hyp = np.c_[f.detections.xyxy[:, :2], f.detections.xyxy[:, 2:] - f.detections.xyxy[:, :2]]
        acc.update(gt_ids, list(f.track_ids), mm.distances.iou_matrix(gt, hyp, max_iou=0.5))
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "num_switches", "mota"], name="clip")
    idf1, switches = float(summary["idf1"].iloc[0]), int(summary["num_switches"].iloc[0])
    print(f"tracker: detect on the synthetic clip: IDF1 {idf1:.3f}, ID switches {switches}")
    assert switches == 1  # only the green square, back in view after 10 frames out of it, gets a new id
    assert idf1 > 0.9
    for oid in (1, 2):  # the red and blue squares overlap and pass each other without swapping ids
        hyp = {int(f.track_ids[k]) for t, f in enumerate(out) for k in _matches(f, scene(t)[1], oid)}
        assert len(hyp) == 1
    assert len({int(i) for f in out for i in f.track_ids}) == 4  # red, blue, green, green again
    lines = mot_lines(1, out[0].detections, out[0].track_ids)
    assert len(lines) == 3 and lines[0].count(",") == 9


def _matches(f, truth: dict, oid: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Indices of the frame's detections that overlap object `oid` at IoU >= 0.5."""
    from autolabel.geometry import box_iou

    if oid not in truth or not len(f.detections):
        return []
    iou = box_iou(np.asarray([truth[oid]], dtype=np.float64), f.detections.xyxy)[0]
    return [int(k) for k in np.flatnonzero(iou >= 0.5)]


def test_a_weak_frame_keeps_its_track_and_a_weak_track_is_dropped_whole() -> None:
    box = np.array([[10.0, 10, 30, 30]])

    def det(score: float, x: float = 0.0) -> Detections:
        return Detections(box + np.array([x, 0, x, 0]), np.array([0]), np.array([score]), ["p"])

    tr = DetectTracker(high=0.5, low=0.1)
    ids = [int(tr.update(det(s, 2 * k))[0]) for k, s in enumerate([0.8, 0.8, 0.2, 0.8])]
    assert ids == [1, 1, 1, 1]  # the dip to 0.2 was matched in the second round, not dropped
    weak = DetectTracker(high=0.5, low=0.1)
    assert int(weak.update(det(0.3))[0]) == 0  # a weak detection starts no track
    frames_ = [(det(s), np.array([7])) for s in (0.9, 0.2, 0.25)]
    assert kept_tracks(frames_, (0.5,)) == set()  # mean 0.45 < 0.5: gone from every frame
    assert kept_tracks(frames_, (0.4,)) == {7}
    kept, kept_ids = only_kept(frames_[1][0], frames_[1][1], {7})
    assert len(kept) == 1 and kept_ids.tolist() == [7]


def test_clip_decisions_keep_a_wavering_track_whole_and_drop_a_weak_one_whole() -> None:
    """Per image, a score wavering around the threshold flickers; per track it does not (a decision: the
    same stored candidates, other thresholds at export, no model)."""
    from autolabel.config.load import parse_ontology
    from autolabel.config.plan import decision_settings
    from autolabel.decisions import DecisionCounts, decide
    from autolabel.run.tracking import decide_clip
    from autolabel.types import CandidateResult, Candidates
    from autolabel.video.clip import Clip, frame_relpath

    dec = decision_settings(parse_ontology({"ontology": {"car": "car"}, "detector": {"box_threshold": 0.5}}))
    steady = [0.7, 0.45, 0.6, 0.48, 0.7]  # mean 0.586: kept on every frame, also where it dips
    weak = [0.3, 0.55, 0.35, 0.3, 0.3]  # mean 0.36: dropped on every frame, also where it peaks
    clip = Clip("c.mp4", "1:2", 10.0, 200, 100, tuple((i, i / 10) for i in range(5)))
    frames = [
        CandidateResult(
            frame_relpath("c.mp4", i),
            200,
            100,
            Candidates(np.array([[10.0 + 3 * i, 10, 40 + 3 * i, 40], [120, 50, 150, 80]]), np.array([a, b]), [0, 0]),
        )
        for i, (a, b) in enumerate(zip(steady, weak))
    ]
    per_image = [len(decide(f.candidates, 200, 100, dec)) for f in frames]
    assert per_image == [1, 1, 1, 0, 1]  # flickers
    counts = DecisionCounts()
    out = list(decide_clip(frames, clip, dec, counts))
    assert [len(r.detections) for r in out] == [1] * 5 and {int(r.track_ids[0]) for r in out} == {1}
    assert [r.detections.xyxy[0, 0] for r in out] == [10, 13, 16, 19, 22]  # the steady object, every frame
    assert [r.frame_index for r in out] == [0, 1, 2, 3, 4] and out[3].time == pytest.approx(0.3)
    assert counts.kept == 5 and counts.track_dropped == 5 and counts.class_kept == {"car": 5}
    strict = list(decide_clip(frames, clip, replace(dec, class_thresholds=(0.6,)), DecisionCounts()))
    assert [len(r.detections) for r in strict] == [0] * 5  # mean 0.586 < 0.6: the whole track goes


def test_a_scene_cut_ends_every_track(tmp_path: Path) -> None:
    path = tmp_path / "cut.mkv"
    write_clip(path, [scene(t)[0] for t in range(10)] + [scene(t, background=OTHER_SCENE)[0] for t in range(10, 20)])
    changes = [f.change for f in frames(path)]
    assert max(changes[:10] + changes[11:]) < 0.05 and changes[10] > 0.9  # motion barely counts, a cut does
    out = _tracked(path, tmp_path)
    before, after = ({int(i) for f in part for i in f.track_ids} for part in (out[:10], out[10:]))
    assert before and after and not before & after  # the squares after the cut are new objects
    uncut = _tracked(path, tmp_path, {"scene_cut": None})
    assert {int(i) for f in uncut[:10] for i in f.track_ids} & {int(i) for f in uncut[10:] for i in f.track_ids}


def test_mot_sequence_keeps_a_frame_without_track_ids_in_its_place(tmp_path: Path) -> None:
    from autolabel.export.base import ExportContext, ExportOptions
    from autolabel.export.mot import MotExporter
    from autolabel.types import ImageResult
    from autolabel.video.clip import Clip, frame_relpath

    clip = Clip("c.mp4", "s", 10.0, 160, 120, ((0, 0.0), (1, 0.1), (2, 0.2)))
    frames = tmp_path / "frames"
    for i in range(3):
        (frames / "c.mp4").mkdir(parents=True, exist_ok=True)
        (frames / frame_relpath("c.mp4", i)).write_bytes(b"jpeg")
    ctx = ExportContext(
        tmp_path, ["square"], [(frame_relpath("c.mp4", i), 160, 120) for i in range(3)], tmp_path / "in",
        False, ExportOptions(), 0.0, clips={"c.mp4": clip}, frames_dir=frames,
    )  # fmt: skip
    exporter = MotExporter()
    exporter.open(ctx)
    for i in range(3):
        det = keyframe_detections(i)
        ids = None if i == 1 else np.arange(1, len(det) + 1)  # frame 1 corrected by hand: no track ids
        exporter.add(ImageResult(frame_relpath("c.mp4", i), 160, 120, det, "c.mp4", i, i / 10, ids))
    exporter.close()
    seq = tmp_path / "mot" / "c"  # named by the clip's stem
    assert sorted(p.name for p in (seq / "img1").iterdir()) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    rows = (seq / "gt" / "gt.txt").read_text().splitlines()
    assert {r.split(",")[0] for r in rows} == {"1", "3"} and "seqLength=3" in (seq / "seqinfo.ini").read_text()
