"""Videos through the annotation tools and back, track ids kept: CVAT for video 1.1 (`<track>`s, checked with
datumaro) and Label Studio video tasks (`videorectangle`s); a track switch fixed in either comes back through
`import` into the corrected COCO (`attributes.track_id`) and MOT. A video run exports to every format with the
default Label Studio root; one format's refusal does not stop the others."""

from __future__ import annotations

import copy
import json
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import cli
from tests.tools import TOKEN, run_tool
from tests.video.clips import scene, write_clip

pytest.importorskip("av")
N = 24
SWAP_AT = 15  # frame from which the person swaps the red and blue squares' ids (after they crossed)

ONTOLOGY = {
    "ontology": {"red square": "square", "blue square": "square", "green square": "square"},
    "detector": {"backend": "tests.fakes:FakeDetector", "box_threshold": 0.3},
    "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
}


@pytest.fixture
def video_run(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "cams").mkdir(parents=True)
    write_clip(data / "cams" / "a.mkv", [scene(t)[0] for t in range(N)])
    Image.fromarray(scene(3)[0]).save(data / "still.png")
    (tmp_path / "ontology.yaml").write_text(yaml.safe_dump(ONTOLOGY))
    run = tmp_path / "run"
    r = cli("label", str(tmp_path / "ontology.yaml"), str(data), "-o", str(run), "-f", "coco,mot,cvat,labelstudio")
    assert r.returncode == 0, r.stderr  # the video run exports to Label Studio with the default root
    return run


def _tracks_by_frame(coco: dict, clip: str = "cams/a.mkv") -> dict[int, dict[int, list[float]]]:
    """frame index → {track id: box} of a clip in a COCO export."""
    frames = {im["id"]: im["frame_index"] for im in coco["images"] if im["file_name"].startswith(clip + "/")}
    out: dict[int, dict[int, list[float]]] = {}
    for a in coco["annotations"]:
        if a["image_id"] in frames:
            out.setdefault(frames[a["image_id"]], {})[a["attributes"]["track_id"]] = a["bbox"]
    return out


def _red_blue(tracks: dict[int, dict[int, list[float]]]) -> tuple[int, int]:
    """The track ids of the red and the blue square (the two on frame 0, red left of blue)."""
    first = sorted(tracks[0].items(), key=lambda kv: kv[1][0])
    red = next(t for t, b in first if b[1] < 25)
    blue = next(t for t, b in first if 25 <= b[1] < 40)
    return red, blue


def _expect_swapped(run: Path, out: Path, red: int, blue: int, boxes_only: bool) -> None:
    """The corrected COCO and MOT carry the person's ids: red and blue swapped from SWAP_AT on."""
    before = _tracks_by_frame(json.loads((run / "coco" / "annotations.json").read_text()))
    after = _tracks_by_frame(json.loads((out / "coco" / "annotations.json").read_text()))
    swap = {red: blue, blue: red}
    for k in range(N):
        want = {(swap.get(t, t) if k >= SWAP_AT else t): b for t, b in before[k].items()}
        assert sorted(after[k]) == sorted(want), k
        for t, b in want.items():
            assert np.allclose(after[k][t], b, atol=1.0 if boxes_only else 0.0), (k, t)
    rows = np.loadtxt(out / "mot" / "cams_a" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    late = rows[rows[:, 0] == SWAP_AT + 1]
    red_box = before[SWAP_AT][red]
    assert int(late[np.argmin(np.abs(late[:, 2] - red_box[0])), 1]) == blue  # MOT's red square is now `blue`


def test_cvat_video_tracks_round_trip_and_datumaro_reads_them(video_run: Path, tmp_path: Path) -> None:
    folder = video_run / "cvat" / "videos" / "cams_a"
    root = ET.parse(folder / "annotations.xml").getroot()
    coco = json.loads((video_run / "coco" / "annotations.json").read_text())
    tracks = _tracks_by_frame(coco)
    assert {int(t.get("id", -1)) for t in root.iter("track")} == {t for f in tracks.values() for t in f}
    assert root.findtext("meta/task/mode") == "interpolation" and root.findtext("meta/task/size") == str(N)
    assert sorted(p.name for p in (folder / "images").iterdir()) == [f"frame_{k:06d}.jpg" for k in range(N)]
    still = ET.parse(video_run / "cvat" / "annotations.xml").getroot()
    assert [im.get("name") for im in still.iter("image")] == ["still.png"]  # frames are not images there
    assert (video_run / "cvat" / "images" / "still.png").is_file()  # beside the XML, as datumaro expects

    got = json.loads(run_tool("datumaro", DATUMARO_TRACKS, str(folder)))
    for k, objects in tracks.items():
        theirs = {int(t): box for t, box in got[str(k)].items()}
        assert sorted(theirs) == sorted(objects), k
        for t, box in objects.items():
            assert np.allclose(theirs[t], box), (k, t)

    red, blue = _red_blue(tracks)
    for track in root.iter("track"):  # the person swaps the two ids from SWAP_AT on (fixing a switch)
        tid = int(track.get("id", -1))
        if tid in (red, blue):
            for shape in track:
                if int(shape.get("frame", 0)) >= SWAP_AT:
                    shape.set("swap", "1")
    fixed = _swap_cvat(root, red, blue)
    ET.ElementTree(fixed).write(tmp_path / "fixed.xml")
    r = cli("import", str(video_run), str(tmp_path / "fixed.xml"), "-f", "coco,mot", "-o", str(tmp_path / "corr"))
    assert r.returncode == 0, r.stderr
    _expect_swapped(video_run, tmp_path / "corr", red, blue, boxes_only=False)


def _swap_cvat(root: ET.Element, red: int, blue: int) -> ET.Element:
    """Move the shapes marked `swap` to the other track."""
    tracks = {int(t.get("id", -1)): t for t in root.iter("track")}
    moved = {tid: [s for s in tracks[tid] if s.get("swap")] for tid in (red, blue)}
    for tid, other in ((red, blue), (blue, red)):
        for s in moved[tid]:
            tracks[tid].remove(s)
            del s.attrib["swap"]
            tracks[other].append(s)
    for t in tracks.values():
        t[:] = sorted(t, key=lambda s: int(s.get("frame", 0)))
    return root


def test_label_studio_video_task_round_trip(video_run: Path, tmp_path: Path) -> None:
    ls = video_run / "labelstudio"
    (task,) = json.loads((ls / "video_tasks.json").read_text())
    assert task["data"]["relpath"] == "cams/a.mkv" and task["data"]["video"].endswith("?d=data/cams/a.mkv")
    assert task["data"]["fps"] == 10.0 and 'framerate="$fps"' in (ls / "video_config.xml").read_text()
    tracks = _tracks_by_frame(json.loads((video_run / "coco" / "annotations.json").read_text()))
    regions = task["predictions"][0]["result"]
    assert sorted(r["id"] for r in regions) == sorted(f"t{t}" for t in {t for f in tracks.values() for t in f})
    assert [t["data"]["relpath"] for t in json.loads((ls / "tasks.json").read_text())] == ["still.png"]

    red, blue = _red_blue(tracks)
    result = copy.deepcopy(regions)  # the person accepts the prediction and swaps the two ids from SWAP_AT
    by_id = {r["id"]: r for r in result}
    a, b = by_id[f"t{red}"]["value"], by_id[f"t{blue}"]["value"]
    cut = SWAP_AT + 1  # Label Studio's frames count from 1
    a_late, b_late = [s for s in a["sequence"] if s["frame"] >= cut], [s for s in b["sequence"] if s["frame"] >= cut]
    a["sequence"] = [s for s in a["sequence"] if s["frame"] < cut] + b_late
    b["sequence"] = [s for s in b["sequence"] if s["frame"] < cut] + a_late
    task["id"], task["annotations"] = 1, [{"id": 1, "result": result, "was_cancelled": False}]
    (tmp_path / "export.json").write_text(json.dumps([task]))
    r = cli("import", str(video_run), str(tmp_path / "export.json"), "-f", "coco,mot", "-o", str(tmp_path / "corr"))
    assert r.returncode == 0, r.stderr
    assert f"{N} reviewed images" in r.stdout
    _expect_swapped(video_run, tmp_path / "corr", red, blue, boxes_only=True)


def test_one_refused_format_does_not_stop_the_others(video_run: Path, tmp_path: Path) -> None:
    r = cli("export", str(video_run), "-f", "cvat,labelstudio,coco", "--labelstudio-root", str(tmp_path / "elsewhere"))
    assert r.returncode == 2
    assert "labelstudio: the labeled folder" in r.stderr and "written all the same: cvat, coco" in r.stderr


DATUMARO_TRACKS = """
import json, sys
import datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], "cvat")
out = {}
for item in ds:
    objects = {}
    for a in item.annotations:
        if a.attributes.get("outside"):  # the track is out of view from this frame on
            continue
        x, y, w, h = a.get_bbox()
        objects[a.attributes["track_id"]] = [x, y, w, h]
    out[item.attributes["frame"]] = objects
print(json.dumps(out))
"""


LS_VIDEO = """
import json, sys
from label_studio_sdk import LabelStudio
url, token, folder, tasks_file, config_file, swap_file, out = sys.argv[1:8]
ls = LabelStudio(base_url=url, api_key=token)
project = ls.projects.create(title="clips", label_config=open(config_file).read())
ls.import_storage.local.create(project=project.id, path=folder, title="videos", use_blob_urls=False)
ls.projects.import_tasks(id=project.id, request=json.load(open(tasks_file)))
(task,) = list(ls.tasks.list(project=project.id, fields="all"))
(pred,) = list(ls.predictions.list(task=task.id))
swap = json.load(open(swap_file))  # region id -> the keyframes the person gives it (the switch fixed)
result = [{**r, "value": {**r["value"], "sequence": swap.get(r["id"], r["value"]["sequence"])}} for r in pred.result]
ls.annotations.create(id=task.id, result=result, was_cancelled=False)
open(out, "wb").write(b"".join(ls.projects.exports.download_sync(id=project.id, export_type="JSON")))
print(json.dumps({"regions": len(pred.result), "data": task.data}))
"""


def test_a_video_task_in_a_live_label_studio_comes_back_with_its_fix(
    video_run: Path, label_studio: str, tmp_path: Path
) -> None:
    ls = video_run / "labelstudio"
    (task,) = json.loads((ls / "video_tasks.json").read_text())
    tracks = _tracks_by_frame(json.loads((video_run / "coco" / "annotations.json").read_text()))
    red, blue = _red_blue(tracks)
    seq = {r["id"]: r["value"]["sequence"] for r in task["predictions"][0]["result"]}
    a, b = seq[f"t{red}"], seq[f"t{blue}"]
    cut = SWAP_AT + 1
    swap = {
        f"t{red}": [s for s in a if s["frame"] < cut] + [s for s in b if s["frame"] >= cut],
        f"t{blue}": [s for s in b if s["frame"] < cut] + [s for s in a if s["frame"] >= cut],
    }
    (tmp_path / "swap.json").write_text(json.dumps(swap))
    export = tmp_path / "ls-export.json"
    args = [str(video_run.parent / "data"), str(ls / "video_tasks.json"), str(ls / "video_config.xml")]
    got = json.loads(
        run_tool("labelstudio", LS_VIDEO, label_studio, TOKEN, *args, str(tmp_path / "swap.json"), str(export))
    )
    assert got["regions"] == len(seq) and got["data"]["relpath"] == "cams/a.mkv"
    video = urllib.request.Request(f"{label_studio}{got['data']['video']}")
    video.add_header("Authorization", f"Token {TOKEN}")
    with urllib.request.urlopen(video, timeout=30) as resp:  # Label Studio serves the clip to its player
        assert resp.read() == (video_run.parent / "data" / "cams" / "a.mkv").read_bytes()
    r = cli("import", str(video_run), str(export), "-f", "coco,mot", "-o", str(tmp_path / "corr"))
    assert r.returncode == 0, r.stderr
    _expect_swapped(video_run, tmp_path / "corr", red, blue, boxes_only=True)
