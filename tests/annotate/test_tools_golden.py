"""Golden tests with the tools' own code: label-studio-sdk's brush decoder reads every exported mask
bit-exactly; datumaro (what CVAT's importer is built on) loads the CVAT XML and the COCO export (polygons
and RLE) with the same masks, multi-part masks kept as one object."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_fill_holes

from tests.tools import run_tool, tool_python, write_handmade

SDK_DECODE = """
import json, sys
import numpy as np
from label_studio_sdk.converter.brush import decode_rle
tasks = json.load(open(sys.argv[1]))
out = {}
for t in tasks:
    for i, r in enumerate(t["predictions"][0]["result"]):
        h, w = r["original_height"], r["original_width"]
        out[f"{t['data']['relpath']}|{i}"] = np.reshape(decode_rle(r["value"]["rle"]), [h, w, 4])[:, :, 3]
np.savez_compressed(sys.argv[2], **out)
"""

DATUMARO_LOAD = """
import sys
import numpy as np
import datumaro as dm
from pycocotools import mask as mask_utils
ds = dm.Dataset.import_from(sys.argv[1], sys.argv[2])
import os
out = {"_found": np.array([item.id for item in ds if os.path.isfile(item.media.path)])}
for item in ds:
    h, w = item.media.size
    for k, a in enumerate(item.annotations):
        if isinstance(a, dm.Polygon):
            rle = mask_utils.frPyObjects([list(map(float, a.points))], h, w)
            m = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
            key = f"{item.id}|id{a.id}"
            out[key] = out.get(key, np.zeros((h, w), bool)) | m  # the parts of one object share its id
        elif isinstance(a, (dm.Mask, dm.RleMask)):
            out[f"{item.id}|{k if sys.argv[2] == 'cvat' else 'id' + str(a.id)}"] = a.image.astype(bool)
np.savez_compressed(sys.argv[3], **out)
"""


def test_label_studio_sdk_decodes_every_brush_mask_bit_exactly(tmp_path: Path) -> None:
    out, results = write_handmade(tmp_path, ["labelstudio"])
    run_tool("labelstudio", SDK_DECODE, str(out / "labelstudio" / "tasks.json"), str(tmp_path / "sdk.npz"))
    got = np.load(tmp_path / "sdk.npz")
    assert len(got.files) == sum(len(r.detections) for r in results)
    for res in results:
        for i, mask in enumerate(res.detections.masks):
            alpha = got[f"{res.relpath}|{i}"]
            assert set(np.unique(alpha)) <= {0, 255}
            assert np.array_equal(alpha > 0, mask)


def _dataset_dir(root: Path, data: Path, annotation: Path, name: str) -> Path:
    """The layout datumaro (and a CVAT dataset zip) expects: the annotation file beside images/."""
    (root / Path(name).parent).mkdir(parents=True, exist_ok=True)
    os.symlink(annotation, root / name)
    os.symlink(data, root / "images")
    return root


def test_datumaro_loads_the_cvat_xml_with_the_same_masks(tmp_path: Path) -> None:
    """The export is laid out as a CVAT dataset (annotations.xml beside images/): datumaro finds the images
    as it is, and its `datum` command line runs in the environment the Makefile builds."""
    out, results = write_handmade(tmp_path, ["cvat"])
    run_tool("datumaro", DATUMARO_LOAD, str(out / "cvat"), "cvat", str(tmp_path / "dm.npz"))
    got = np.load(tmp_path / "dm.npz")
    assert sorted(got["_found"].tolist()) == ["a/one", "b/two"]  # every image found on disk
    assert len(got.files) == 8 + 1
    for res in results:
        stem = res.relpath.rsplit(".", 1)[0]
        for i, mask in enumerate(res.detections.masks):
            assert np.array_equal(got[f"{stem}|{i}"], mask)
    datum = Path(tool_python("datumaro")).parent / "datum"
    info = subprocess.run([str(datum), "dinfo", f"{out / 'cvat'}:cvat"], capture_output=True, text=True)
    assert info.returncode == 0 and "length: 2" in info.stdout, info.stderr[-2000:]


def test_datumaro_loads_the_coco_export_with_the_same_masks(tmp_path: Path) -> None:
    for masks in ("rle", "polygon"):
        out, results = write_handmade(tmp_path / masks, ["coco"], coco_masks=masks)
        coco = out / "coco" / "annotations.json"
        ds = _dataset_dir(
            tmp_path / masks / "dm", tmp_path / masks / "data", coco, "annotations/instances_default.json"
        )
        run_tool("datumaro", DATUMARO_LOAD, str(ds), "coco_instances", str(tmp_path / f"{masks}.npz"))
        got = np.load(tmp_path / f"{masks}.npz")
        assert len(json.loads(coco.read_text())["annotations"]) == 8
        ann_id = 0
        for res in results:
            stem = res.relpath.rsplit(".", 1)[0]
            for mask in res.detections.masks:
                ann_id += 1
                want = mask if masks == "rle" else binary_fill_holes(mask)  # polygons carry no holes
                assert np.array_equal(got[f"{stem}|id{ann_id}"], want), (masks, stem, ann_id)
