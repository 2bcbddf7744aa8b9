"""Videos in `autolabel label`: clips beside images in the input folder, their sampled frames labeled as
images of the run, linked into tracks at decision time, exported to COCO (videos, frame_index, track ids;
pycocotools), YOLO split by clip (ultralytics' loader) and MOT (scored with motmetrics against the clip's
known trajectories); odd videos skipped with the reason; kill -9 mid-clip resumes byte-identical; rotated
and variable-frame-rate clips; changed and deleted videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from autolabel.export import ExportOptions
from tests.helpers import cli, killed_after
from tests.video.clips import scene, write_clip

pytest.importorskip("av")
N, M = 36, 12  # frames of the two clips

ONTOLOGY = {
    "ontology": {"red square": "square", "blue square": "square", "green square": "square"},
    "detector": {"backend": "tests.fakes:FakeDetector", "box_threshold": 0.3},
    "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
}


def _ontology(tmp_path: Path, video: dict | None = None) -> Path:
    path = tmp_path / "ontology.yaml"
    path.write_text(yaml.safe_dump({**ONTOLOGY, **({"video": video} if video else {})}))
    return path


def _empty_video(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "bgr0"
        out.start_encoding()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "cams").mkdir(parents=True)
    write_clip(root / "cams" / "a.mkv", [scene(t)[0] for t in range(N)])
    write_clip(root / "b.MKV", [scene(t)[0] for t in range(M)])  # extensions in any case
    Image.fromarray(scene(5)[0]).save(root / "still.png")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    _empty_video(root / "empty.mkv")
    return root


def _label(ontology: Path, data: Path, run: Path, rc: int = 3) -> None:
    """Label with the fake backends; exit status 3: some inputs were skipped (the odd videos)."""
    r = cli("label", str(ontology), str(data), "-o", str(run), "-f", "coco,yolo,mot")
    assert r.returncode == rc, r.stderr + r.stdout


def _mot_scores(gt_txt: Path, frames: int) -> tuple[float, int]:
    """IDF1 and ID switches of a MOT gt.txt (our tracks) against the synthetic clip's true trajectories."""
    if not hasattr(np, "asfarray"):  # motmetrics 1.4 still calls it; NumPy 2 removed it
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    import motmetrics as mm

    rows = np.loadtxt(gt_txt, delimiter=",", ndmin=2)
    acc = mm.MOTAccumulator(auto_id=True)
    for t in range(frames):
        truth = scene(t)[1]
        gt = np.array([[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in truth.values()]).reshape(-1, 4)
        mine = rows[rows[:, 0] == t + 1]
        acc.update(list(truth), mine[:, 1].astype(int).tolist(), mm.distances.iou_matrix(gt, mine[:, 2:6], max_iou=0.5))
    s = mm.metrics.create().compute(acc, metrics=["idf1", "num_switches"], name="clip")
    return float(s["idf1"].iloc[0]), int(s["num_switches"].iloc[0])


def test_a_folder_of_clips_and_images_becomes_tracked_datasets(data: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    run = tmp_path / "run"
    _label(_ontology(tmp_path), data, run)
    skipped = dict(line.split("\t") for line in (run / "skipped.txt").read_text().splitlines())
    assert set(skipped) == {"broken.mp4", "empty.mkv"}  # skipped with the reason, the run went on
    assert "cannot" in skipped["broken.mp4"] and "no frame" in skipped["empty.mkv"]
    assert len(list((run / "frames").rglob("*.jpg"))) == N + M

    coco = COCO(str(run / "coco" / "annotations.json"))
    videos = {v["file_name"]: v for v in coco.dataset["videos"]}
    assert set(videos) == {"b.MKV", "cams/a.mkv"} and videos["cams/a.mkv"]["fps"] == pytest.approx(10)
    frames = [im for im in coco.dataset["images"] if "video_id" in im]
    assert len(frames) == N + M and len(coco.dataset["images"]) == N + M + 1
    first = next(im for im in frames if im["file_name"] == "cams/a.mkv/0000007.jpg")
    assert first["frame_index"] == 7 and first["video_id"] == videos["cams/a.mkv"]["id"]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[first["id"]]))
    assert len(anns) == len(scene(7)[1]) == 2 and all(a["attributes"]["track_id"] > 0 for a in anns)
    assert coco.annToMask(anns[0]).sum() == anns[0]["area"]

    idf1, switches = _mot_scores(run / "mot" / "cams_a" / "gt" / "gt.txt", N)
    print(
        f"tracker: detect, end to end (JPEG frames, store, decisions, MOT export): IDF1 {idf1:.3f}, {switches} switch"
    )
    assert idf1 > 0.9 and switches <= 1
    seqinfo = (run / "mot" / "cams_a" / "seqinfo.ini").read_text()
    assert "seqLength=36" in seqinfo and "frameRate=10.000" in seqinfo and "imWidth=160" in seqinfo
    assert "name=cams_a\n" in seqinfo  # the clip's stem, as MOT tools expect
    assert len(list((run / "mot" / "cams_a" / "img1").iterdir())) == N

    _yolo_is_split_by_clip(run / "yolo")
    before = {p: p.read_bytes() for p in [run / "coco" / "annotations.json", *sorted((run / "mot").rglob("gt.txt"))]}
    _label(_ontology(tmp_path), data, run)  # a finished run: nothing relabeled, the same exports
    assert {p: p.read_bytes() for p in before} == before


def _yolo_is_split_by_clip(yolo: Path) -> None:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    meta = check_det_dataset(str(yolo / "data.yaml"))
    split_of: dict[str, set[str]] = {}
    for split in ("train", "val"):
        ds = YOLODataset(img_path=meta[split], data=meta, task="segment", imgsz=160, augment=False)
        cache = np.load(Path(ds.label_files[0]).parent.with_suffix(".cache"), allow_pickle=True).item()
        assert cache["results"][1] == 0 and cache["msgs"] == [], "no missing or corrected label"
        for im in ds.im_files:
            rel = Path(im).relative_to(yolo / "images" / split).as_posix()
            split_of.setdefault(rel.rsplit("/", 1)[0] if ".mkv/" in rel.lower() else rel, set()).add(split)
    assert set(split_of) == {"b.MKV", "cams/a.mkv", "still.png"}
    assert all(len(s) == 1 for s in split_of.values()), f"a clip in two splits: {split_of}"


def test_kill_9_mid_clip_then_rerun_gives_byte_identical_exports(data: Path, tmp_path: Path) -> None:
    ontology = _ontology(tmp_path)
    ref = tmp_path / "ref"
    _label(ontology, data, ref)
    run = tmp_path / "run"
    args = ["label", str(ontology), str(data), "-o", str(run), "-f", "coco,yolo,mot", "-b", "2"]
    done = killed_after(args, run, 8, {"AUTOLABEL_FAKE_DELAY": "0.15"})
    assert 8 <= done < N + M + 1, f"killed mid-clip ({done} frames stored)"
    _label(ontology, data, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["already_done"] == done and summary["processed"] == N + M + 1 - done
    for rel in ["coco/annotations.json", "mot/cams_a/gt/gt.txt", "mot/b/gt/gt.txt"]:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel
    labels = sorted(p.relative_to(run / "yolo").as_posix() for p in (run / "yolo" / "labels").rglob("*.txt"))
    assert labels and all((run / "yolo" / p).read_bytes() == (ref / "yolo" / p).read_bytes() for p in labels)


def _rotated_mp4(path: Path, images: list[np.ndarray]) -> None:
    """An H.264 MP4 whose track header says: display rotated (the way phones record portrait video)."""
    import struct

    write_clip(path, images, codec="libx264")
    raw = bytearray(path.read_bytes())
    at = raw.find(b"tkhd")
    version = raw[at + 4]
    matrix = at + 8 + (20 if version == 0 else 32) + 16
    raw[matrix : matrix + 36] = struct.pack(">9I", 0, 1 << 16, 0, (-1 << 16) & 0xFFFFFFFF, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(raw))


def test_rotated_and_variable_frame_rate_clips(tmp_path: Path) -> None:
    from autolabel.video.decode import frames

    data = tmp_path / "data"
    data.mkdir()
    _rotated_mp4(data / "portrait.mp4", [scene(t)[0] for t in range(4)])
    write_clip(data / "vfr.mkv", [scene(t)[0] for t in range(5)], times=[0, 0.1, 0.35, 0.4, 1.0])
    assert next(frames(data / "portrait.mp4")).image.shape == (160, 120, 3)  # shown upright: 120 wide
    run = tmp_path / "run"
    _label(_ontology(tmp_path, {"fps": 4}), data, run, rc=0)
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    sizes = {im["file_name"].split("/")[0]: (im["width"], im["height"]) for im in coco["images"]}
    assert sizes == {"portrait.mp4": (120, 160), "vfr.mkv": (160, 120)}
    vfr = sorted(im["frame_index"] for im in coco["images"] if im["file_name"].startswith("vfr"))
    assert vfr == [0, 2, 4]  # 4 frames a second by their timestamps: 0, ≥0.25 → 0.35, ≥0.6 → 1.0
    upright = np.asarray(Image.open(run / "frames" / "portrait.mp4" / "0000000.jpg"), dtype=np.int16)
    assert np.abs(upright - np.rot90(scene(0)[0], 3)).mean() < 8  # the frame as a player shows it


def test_a_changed_video_is_relabeled_and_a_deleted_one_leaves_the_run(data: Path, tmp_path: Path) -> None:
    ontology, run = _ontology(tmp_path), tmp_path / "run"
    _label(ontology, data, run)
    write_clip(data / "b.MKV", [scene(t)[0] for t in range(20, 26)])  # 6 other frames
    (data / "cams" / "a.mkv").unlink()
    _label(ontology, data, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["images_total"] == 6 + 1 and summary["processed"] == 6
    assert not (run / "frames" / "cams" / "a.mkv").exists()
    assert sorted(p.name for p in (run / "frames" / "b.MKV").iterdir()) == [f"{i:07d}.jpg" for i in range(6)]
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    assert [v["file_name"] for v in coco["videos"]] == ["b.MKV"] and len(coco["images"]) == 7
    assert not (run / "mot" / "cams_a").exists()


def test_fiftyone_gets_video_samples_whose_detections_carry_their_track(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("fiftyone")
    from autolabel.api import label_folder
    from autolabel.export.fiftyone import import_fiftyone

    run = tmp_path / "run"
    name = f"videos-{tmp_path.name}"
    _, written = label_folder(ONTOLOGY, data, run, formats=["fiftyone", "mot"], export=ExportOptions(dataset_name=name))
    assert written["fiftyone"] == f"dataset '{name}', videos '{name}-video'"
    fo = import_fiftyone()
    videos = fo.load_dataset(f"{name}-video")
    assert videos.media_type == "video" and sorted(videos.values("clip")) == ["b.MKV", "cams/a.mkv"]
    clip = videos.match(fo.ViewField("clip") == "cams/a.mkv").first()
    assert Path(clip.filepath) == (data / "cams" / "a.mkv").resolve() and len(clip.frames) == N
    assert clip.metadata.size_bytes == (data / "cams" / "a.mkv").stat().st_size and clip.metadata.frame_rate == 10
    rows = np.loadtxt(run / "mot" / "cams_a" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    for number, frame in clip.frames.items():  # frame number = decoded index + 1 (every frame sampled here)
        ids = sorted(d.index for d in frame["autolabel"].detections)
        assert ids == sorted(rows[rows[:, 0] == number][:, 1].astype(int).tolist())
        assert all(d["keyframe"] for d in frame["autolabel"].detections)
    images = fo.load_dataset(name)
    assert len(images) == N + M + 1 and len(images.exists("clip")) == N + M
    label_folder(ONTOLOGY, data, run, formats=["fiftyone"], export=ExportOptions(dataset_name=name))
    assert sorted(d for d in fo.list_datasets() if d.startswith(name)) == [name, f"{name}-video"]  # replaced whole


def test_other_sampling_relabels_the_clips_not_the_images(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _label(_ontology(tmp_path), data, run)
    _label(_ontology(tmp_path, {"stride": 3}), data, run)  # no --overwrite needed: the images stay
    summary = json.loads((run / "summary.json").read_text())
    assert summary["images_total"] == N // 3 + M // 3 + 1 and summary["processed"] == N // 3 + M // 3
    coco = json.loads((run / "coco" / "annotations.json").read_text())
    assert sorted({im["frame_index"] for im in coco["images"] if "video_id" in im}) == list(range(0, N, 3))
    assert len(list((run / "frames").rglob("*.jpg"))) == N // 3 + M // 3  # the frames not sampled now went


def test_eval_and_tune_score_the_frames_against_hand_labeled_frames(data: Path, tmp_path: Path) -> None:
    """Ground truth for some frames of a clip (file_name = the frame's relative path, as the COCO export
    names it): eval scores what the export holds (decided per track), tune reads the same frames."""
    from autolabel.quality.evaluate import evaluate_run
    from autolabel.quality.tune import tune_run
    from autolabel.run.run import Run

    run = tmp_path / "run"
    _label(_ontology(tmp_path), data, run)
    hand = range(0, N, 3)
    images = [{"id": t + 1, "file_name": f"cams/a.mkv/{t:07d}.jpg", "width": 160, "height": 120} for t in hand]
    anns = [
        {"id": len(images) * 10 + k, "image_id": t + 1, "category_id": 1, "bbox": [b[0], b[1], 16, 16], "iscrowd": 0}
        for t in hand
        for k, b in enumerate(scene(t)[1].values())
    ]
    for i, a in enumerate(anns):
        a["id"], a["area"] = i + 1, 256
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "square"}]}))
    report = evaluate_run(run, gt)
    assert report.images_matched == len(hand) and not report.images_only_in_gt
    square = report.per_class["square"]
    assert square["precision"] == 1.0 and square["recall"] == 1.0  # every square of every hand-labeled frame
    with Run.open(run) as opened:
        tuned = tune_run(opened, gt)
    assert tuned.images == len(hand)
