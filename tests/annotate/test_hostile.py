"""Hostile corrections files (generated here): NaN, infinite and huge coordinates, junk RLE, bad widths, deep
JSON, odd labels. Each is refused with a clear error naming the file, task or image and shape (exit 2, never a
crash: a NaN polygon used to segfault pycocotools), and a refused import leaves every file of the run as it
was."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autolabel.annotate.importing import import_corrections
from autolabel.errors import UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.quality.evaluate import evaluate_run
from autolabel.run.run import Run
from autolabel.tool_rle import ls_encode
from tests.helpers import cli

NAN, INF = float("nan"), float("inf")


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run but its lock (whose text names the command holding it)."""
    return {
        str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def _ls_tasks(run: Path) -> list[dict]:
    export_run(run, ["labelstudio"], ExportOptions(tool_masks="polygon"))
    tasks = json.loads((run / "labelstudio" / "tasks.json").read_text())
    for k, t in enumerate(tasks, start=1):
        t["id"], t["annotations"] = k, []
    return tasks


def _submit(tasks: list[dict], rel: str, change: Callable[[list[dict]], None]) -> list[dict]:
    tasks = copy.deepcopy(tasks)
    task = next(t for t in tasks if t["data"]["relpath"] == rel)
    result = copy.deepcopy(task["predictions"][0]["result"])
    change(result)
    task["annotations"] = [{"id": 1, "result": result, "was_cancelled": False}]
    return tasks


def _poly(v: float) -> Callable[[list[dict]], None]:
    def change(result: list[dict]) -> None:
        result[0]["value"]["points"][1] = [v, 10.0]

    return change


def _rect(**value: object) -> Callable[[list[dict]], None]:
    def change(result: list[dict]) -> None:
        base = {"x": 10.0, "y": 10.0, "width": 20.0, "height": 20.0, "rectanglelabels": ["square"]}
        result.append({**result[0], "id": "r9", "type": "rectanglelabels", "value": {**base, **value}})

    return change


def _brush(**value: object) -> Callable[[list[dict]], None]:
    def change(result: list[dict]) -> None:
        m = np.zeros((120, 160), bool)
        m[5:9, 5:9] = True
        base = {"format": "rle", "rle": ls_encode(m), "brushlabels": ["square"]}
        result.append({**result[0], "id": "b9", "type": "brushlabels", "value": {**base, **value}})

    return change


def _label(name: object) -> Callable[[list[dict]], None]:
    def change(result: list[dict]) -> None:
        result[0]["value"]["polygonlabels"] = [name]

    return change


def _junk_rle() -> list[int]:
    m = np.zeros((120, 160), bool)
    m[5:9, 5:9] = True
    return ls_encode(m) + [7] * 200_000  # a valid mask, then junk


LABEL_STUDIO = {
    "polygon NaN": (_poly(NAN), "must be a finite number"),
    "polygon inf": (_poly(INF), "must be a finite number"),
    "polygon huge": (_poly(3e8), "lies far outside the 160×120 image"),
    "rectangle NaN": (_rect(x=NAN), "rectangle x must be a finite number"),
    "rotated rectangle huge": (_rect(rotation=30, width=4e8), "lies far outside"),
    "empty brushlabels": (_brush(brushlabels=[]), "the label must be non-empty text"),
    "rle over 255": (_brush(rle=[300, 1, 2]), "outside 0–255"),
    "rle a string": (_brush(rle="abc"), "must be a list of whole numbers"),
    "rle floats": (_brush(rle=[1.5, 2.0]), "must be a list of whole numbers"),
    "rle with junk": (_brush(rle=_junk_rle()), "junk after the mask"),
    "lone surrogate label": (_label("\ud800"), "control character"),
    "newline label": (_label("cat\ndog"), "control character"),
    "empty label": (_label(""), "non-empty text"),
    "huge label": (_label("x" * 1_000_000), "1000000 characters"),
    "dots label": (_label("../"), "no name"),
    "result not an object": (lambda result: result.append("oops"), "not an object"),
}


@pytest.mark.parametrize("case", sorted(LABEL_STUDIO))
def test_hostile_label_studio_files_are_refused_and_change_nothing(
    case: str, labeled_run: dict, tmp_path: Path
) -> None:
    run = labeled_run["run"]
    tasks = _ls_tasks(run)
    change, message = LABEL_STUDIO[case]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_submit(tasks, "c.jpg", change)))
    before = snapshot(run)
    with pytest.raises(UsageError) as e:
        import_corrections(run, path, ["coco"])
    assert message in e.value.message and "task 3 ('c.jpg')" in e.value.message, e.value.message
    assert str(path) in e.value.message
    assert snapshot(run) == before


def test_deep_json_mixed_ids_and_duplicate_tasks(labeled_run: dict, tmp_path: Path) -> None:
    run = labeled_run["run"]
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    r = cli("import", str(run), str(tmp_path / "deep.json"))
    assert r.returncode == 2 and "nested too deeply" in r.stderr, r.stderr
    tasks = _submit(_ls_tasks(run), "c.jpg", lambda result: None)
    task = next(t for t in tasks if t["data"]["relpath"] == "c.jpg")
    task["annotations"].append({"id": "x7", "result": [], "was_cancelled": False})  # ids of two types
    twin = copy.deepcopy(task)
    twin["id"] = 99
    tasks.append(twin)
    (tmp_path / "mixed.json").write_text(json.dumps(tasks))
    r = cli("import", str(run), str(tmp_path / "mixed.json"), "-f", "")
    assert r.returncode == 0, r.stderr
    assert "note: c.jpg: task 99 replaces task 3 (the same image twice; the later one counts)" in r.stdout


def _cvat(run: Path, tmp_path: Path, change: Callable[[ET.Element], None]) -> Path:
    export_run(run, ["cvat"], ExportOptions(tool_masks="polygon"))
    tree = ET.parse(run / "cvat" / "annotations.xml")
    image = next(im for im in tree.getroot().iter("image") if im.get("name") == "c.jpg")
    change(image)
    tree.write(tmp_path / "cvat.xml")
    return tmp_path / "cvat.xml"


def _set(tag: str, **attrs: str) -> Callable[[ET.Element], None]:
    def change(image: ET.Element) -> None:
        el = image if tag == "image" else ET.SubElement(image, tag, {"label": "square"})
        for k, v in attrs.items():
            el.set(k, v)

    return change


CVAT = {
    "width abc": (_set("image", width="abc"), "image 'c.jpg': width must be a finite number"),
    "points x": (_set("polygon", points="1,2,3;x"), "polygon points must be 'x,y;x,y;…'"),
    "points NaN": (_set("polygon", points="1,2;nan,4;5,6"), "must be a finite number"),
    "points huge": (_set("polygon", points="1,2;3e8,4;5,6"), "lies far outside"),
    "rle 5000 digits": (
        _set("mask", rle="9" * 5000, left="0", top="0", width="4", height="4"),
        "mask rle count must be a finite number",
    ),
    "rle abc": (_set("mask", rle="1,abc", left="0", top="0", width="4", height="4"), "rle count must be"),
    "mask NaN left": (_set("mask", rle="16", left="nan", top="0", width="4", height="4"), "mask left"),
    "box inf": (_set("box", xtl="0", ytl="0", xbr="inf", ybr="5"), "box xbr must be a finite number"),
    "empty label": (_set("box", xtl="0", ytl="0", xbr="5", ybr="5", label=""), "non-empty text"),
}


@pytest.mark.parametrize("case", sorted(CVAT))
def test_hostile_cvat_files_are_refused_and_change_nothing(case: str, labeled_run: dict, tmp_path: Path) -> None:
    run = labeled_run["run"]
    change, message = CVAT[case]
    path = _cvat(run, tmp_path, change)
    before = snapshot(run)
    with pytest.raises(UsageError) as e:
        import_corrections(run, path, ["coco"], reviewed="all")
    assert message in e.value.message and "c.jpg" in e.value.message, e.value.message
    assert snapshot(run) == before


def test_a_whole_width_written_as_a_float_is_read(labeled_run: dict, tmp_path: Path) -> None:
    path = _cvat(labeled_run["run"], tmp_path, _set("image", width="160.0"))
    assert import_corrections(labeled_run["run"], path, [], reviewed="all").reviewed == 9


def _coco(run: Path, change: Callable[[dict], None]) -> dict:
    export_run(run, ["coco"], ExportOptions(coco_masks="rle"))
    data = json.loads((run / "coco" / "annotations.json").read_text())
    change(data)
    return data


COCO = {
    "polygon huge": (lambda d: d["annotations"][0].update(segmentation=[[0, 0, 3e8, 0, 5, 5]]), "lies far outside"),
    "bbox huge": (lambda d: d["annotations"][0].update(bbox=[0, 0, 1e9, 1e9]), "bbox"),
    "rle other size": (
        lambda d: d["annotations"][0]["segmentation"].update(size=[5000, 5000]),
        "is not the image's [120, 160]",
    ),
    "rle junk string": (lambda d: d["annotations"][0]["segmentation"].update(counts="zz~~"), "RLE counts"),
    "rle short": (lambda d: d["annotations"][0]["segmentation"].update(counts=[5, 5]), "cover 10 pixels"),
    "category newline": (lambda d: d["categories"][0].update(name="a\nb"), "control character"),
}


@pytest.mark.parametrize("case", sorted(COCO))
def test_hostile_coco_files_are_refused_by_import_and_eval(case: str, labeled_run: dict, tmp_path: Path) -> None:
    run = labeled_run["run"]
    change, message = COCO[case]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(_coco(run, change)))
    before = snapshot(run)
    with pytest.raises(UsageError) as e:
        import_corrections(run, path, ["coco"], reviewed="all")
    assert message in e.value.message, e.value.message
    assert snapshot(run) == before
    if case != "category newline":
        with pytest.raises(UsageError, match=r"far outside|RLE"):
            evaluate_run(run, path)


def test_a_refused_import_leaves_the_run_byte_identical(labeled_run: dict, tmp_path: Path) -> None:
    """Refused for its output (inside the labeled folder) after reading: groundtruth.json used to be merged
    first; a NaN polygon through the command line: exit 2, never a signal."""
    run = labeled_run["run"]
    tasks = _submit(_ls_tasks(run), "c.jpg", lambda result: None)
    (tmp_path / "ok.json").write_text(json.dumps(tasks))
    before = snapshot(run)
    r = cli("import", str(run), str(tmp_path / "ok.json"), "-o", str(labeled_run["input"] / "corr"))
    assert r.returncode == 2 and "never writes there" in r.stderr, r.stderr
    assert snapshot(run) == before and not (labeled_run["input"] / "corr").exists()
    (tmp_path / "nan.json").write_text(json.dumps(_submit(_ls_tasks(run), "c.jpg", _poly(NAN))))
    before = snapshot(run)
    r = cli("import", str(run), str(tmp_path / "nan.json"))
    assert r.returncode == 2 and "must be a finite number" in r.stderr, (r.returncode, r.stderr)
    assert snapshot(run) == before


def test_a_large_cvat_xml_is_read_in_little_memory(labeled_run: dict, tmp_path: Path) -> None:
    """A CVAT XML is streamed image by image (parsed whole, a 200 MB export took 2.2 GB): ~30 MB of
    polygons read with a peak far below the file's parsed size."""
    import tracemalloc

    from autolabel.annotate.corrections import read_corrections
    from autolabel.run.run import Run

    with Run.open(labeled_run["run"]) as run:
        sizes = {r: (w, h) for r, w, h in run.images()}
    polygon = '<polygon label="square" source="manual" occluded="0" points="5,5;20,5;20,20"></polygon>'
    body = polygon + '<tag label="square" source="manual"></tag>' * 400  # many elements: what parsing costs
    path = tmp_path / "big.xml"
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>')
        for k in range(200):
            for rel, (w, h) in sizes.items():
                f.write(f'<image id="{k}" name="{rel}" width="{w}" height="{h}">{body}</image>')
        f.write("</annotations>")
    assert path.stat().st_size > 25e6
    tracemalloc.start()
    corr = read_corrections(path, sizes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(corr.images) == len(sizes) and corr.ignored["tag"] == 200 * 400 * len(sizes)
    assert peak < 40e6, peak  # parsed whole: over 300 MB


def test_a_large_label_studio_export_is_read_task_by_task(labeled_run: dict, tmp_path: Path) -> None:
    """A Label Studio export (a list of tasks) is parsed one task at a time: peak memory near one task, not
    the file; a cut-off export is a clear error."""
    import tracemalloc

    from autolabel.annotate.corrections import read_corrections

    run = labeled_run["run"]
    tasks = _submit(_ls_tasks(run), "c.jpg", lambda result: None)
    task = next(t for t in tasks if t["data"]["relpath"] == "c.jpg")
    filler = {"type": "choices", "value": {"choices": ["x" * 40] * 400}}  # a result with no shape: cheap to read
    task["annotations"][0]["result"] += [filler] * 10
    path = tmp_path / "big.json"
    with path.open("w") as f:
        f.write("[")
        for k in range(150):
            f.write(("," if k else "") + json.dumps({**task, "id": k}))
        f.write("]")
    assert path.stat().st_size > 20e6
    with Run.open(run) as opened:
        sizes = {r: (w, h) for r, w, h in opened.images()}
    tracemalloc.start()
    corr = read_corrections(path, sizes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert list(corr.images) == ["c.jpg"] and corr.ignored["choices"] == 1500
    assert peak < 15e6, peak  # the whole file parsed: several times its 24 MB
    path.write_text(path.read_text()[:-5000])
    with pytest.raises(UsageError, match=r"ends before its list of tasks is closed|not valid JSON"):
        read_corrections(path, sizes)
