"""The whole round trip against a real Label Studio (installed from pip in its own environment), started on
127.0.0.1 with its own data folder and token: push a run, read the predictions back with label-studio-sdk
(masks equal), correct a task through the API as a reviewer would, export JSON, import it, and find the
correction in the corrected dataset and in `eval`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from autolabel.run.run import Run
from tests.helpers import cli
from tests.tools import TOKEN, run_tool

READ_BACK = """
import json, sys
import numpy as np
from label_studio_sdk import LabelStudio
from label_studio_sdk.converter.brush import decode_rle
ls = LabelStudio(base_url=sys.argv[1], api_key=sys.argv[2])
project = next(p for p in ls.projects.list() if p.title == sys.argv[3])
masks, ids, versions = {}, {}, set()
for t in ls.tasks.list(project=project.id, fields="all"):
    ids[t.data["relpath"]] = t.id
    for p in ls.predictions.list(task=t.id):
        versions.add(p.model_version)
        for i, r in enumerate(p.result):
            h, w = r["original_height"], r["original_width"]
            alpha = np.reshape(decode_rle(r["value"]["rle"]), [h, w, 4])[:, :, 3]
            masks[f"{t.data['relpath']}|{i}|{r['value']['brushlabels'][0]}"] = alpha > 0
np.savez_compressed(sys.argv[4], **masks)
print(json.dumps({"project": project.id, "tasks": ids, "versions": sorted(versions)}))
"""

CORRECT_AND_EXPORT = """
import json, sys
from label_studio_sdk import LabelStudio
ls = LabelStudio(base_url=sys.argv[1], api_key=sys.argv[2])
project, task = int(sys.argv[3]), int(sys.argv[4])
pred = list(ls.predictions.list(task=task))[0]
result = [r for r in pred.result if r["value"]["brushlabels"] != ["ring"]]  # the reviewer deletes the ring
ls.annotations.create(id=task, result=result, was_cancelled=False)
data = b"".join(ls.projects.exports.download_sync(id=project, export_type="JSON"))
open(sys.argv[5], "wb").write(data)
"""


def test_push_review_export_import_eval_with_a_real_label_studio(
    labeled_run: dict, label_studio: str, tmp_path: Path
) -> None:
    run_dir = labeled_run["run"]
    r = cli("push", "labelstudio", str(run_dir), "--url", label_studio, "--token", TOKEN, "--project", "cats")
    assert r.returncode == 0, r.stderr
    assert "9 tasks imported, 0 already there" in r.stdout
    r = cli("push", "labelstudio", str(run_dir), "--url", label_studio, "--token", TOKEN, "--project", "cats")
    assert r.returncode == 0 and "0 tasks imported, 9 already there" in r.stdout  # idempotent
    _pushes_never_mix_projects(labeled_run, label_studio, tmp_path)

    got = json.loads(run_tool("labelstudio", READ_BACK, label_studio, TOKEN, "cats", str(tmp_path / "back.npz")))
    masks = np.load(tmp_path / "back.npz")
    with Run.open(run_dir) as run:
        expected = {
            f"{res.relpath}|{i}|{run.classes[int(c)]}": res.detections.masks[i]
            for res in run.results()
            for i, c in enumerate(res.detections.class_id)
        }
    assert sorted(masks.files) == sorted(expected)
    for key, mask in expected.items():
        assert np.array_equal(masks[key], mask), key
    assert len(got["tasks"]) == 9 and got["versions"] == [f"autolabel {run_dir.name}"]
    image = urllib.request.Request(f"{label_studio}/data/local-files/?d=in/c.jpg")
    image.add_header("Authorization", f"Token {TOKEN}")
    with urllib.request.urlopen(image, timeout=30) as resp:  # the storage serves the labeled images
        assert resp.read() == (labeled_run["input"] / "c.jpg").read_bytes()

    export = tmp_path / "ls-export.json"
    run_tool(
        "labelstudio",
        CORRECT_AND_EXPORT,
        label_studio,
        TOKEN,
        str(got["project"]),
        str(got["tasks"]["c.jpg"]),
        str(export),
    )
    r = cli("import", str(run_dir), str(export), "--coco-masks", "rle")
    assert r.returncode == 0, r.stderr
    assert "1 reviewed images" in r.stdout
    report = json.loads((run_dir / "corrections.json").read_text())
    assert report["changes"]["ring"]["removed"] == 1 and report["changes"]["square"]["unchanged"] == 1

    corrected = json.loads((run_dir / "corrected" / "coco" / "annotations.json").read_text())
    c_id = next(im["id"] for im in corrected["images"] if im["file_name"] == "c.jpg")
    names = {c["id"]: c["name"] for c in corrected["categories"]}
    kept = [a for a in corrected["annotations"] if a["image_id"] == c_id]
    assert [names[a["category_id"]] for a in kept] == ["square"]
    square = next(m for k, m in expected.items() if k.startswith("c.jpg|") and k.endswith("|square"))
    assert np.array_equal(mask_utils.decode(kept[0]["segmentation"]).astype(bool), square)

    r = cli("eval", str(run_dir))
    assert r.returncode == 0, r.stderr
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["images_matched"] == 1
    assert ev["per_class"]["ring"]["gt"] == 0 and ev["per_class"]["ring"]["precision"] == 0.0
    assert ev["per_class"]["square"]["recall"] == 1.0


def _pushes_never_mix_projects(labeled_run: dict, url: str, tmp_path: Path) -> None:
    """The run's project is found by the run (kept in its description), not by title; a project of another run,
    or with a labeling config that cannot show the run's labels, is refused before anything changes."""
    from autolabel.annotate.push import LabelStudioClient
    from autolabel.api import label_folder
    from tests.fakes import FakeDetector, FakeSegmenter

    run_dir = labeled_run["run"]
    r = cli("push", "labelstudio", str(run_dir), "--url", url, "--token", TOKEN)  # no --project: found by the run
    assert r.returncode == 0 and "updated: 0 tasks imported, 9 already there" in r.stdout, r.stdout + r.stderr
    other = tmp_path / "other" / run_dir.name  # another run of the same directory name
    label_folder(
        tmp_path / "ontology.yaml", labeled_run["input"], other, ["coco"], backends=(FakeDetector(), FakeSegmenter())
    )
    r = cli("push", "labelstudio", str(other), "--url", url, "--token", TOKEN)
    assert r.returncode == 0 and "created: 9 tasks imported, 0 already there" in r.stdout, r.stdout + r.stderr
    r = cli("push", "labelstudio", str(other), "--url", url, "--token", TOKEN, "--project", "cats")
    assert r.returncode == 2 and "holds another autolabel run" in r.stderr
    client = LabelStudioClient(url, TOKEN)
    rect = '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
    made = client.request(
        "POST",
        "/api/projects/",
        {"title": "team2", "label_config": rect + '<Label value="zebra"/></RectangleLabels></View>'},
    )
    r = cli("push", "labelstudio", str(other), "--url", url, "--token", TOKEN, "--project", "team2")
    assert r.returncode == 2 and "cannot show this run's labels: no <BrushLabels" in r.stderr, r.stderr
    assert len(r.stderr) < 1000  # short
    assert client.request("GET", "/api/storages/localfiles/", query={"project": made["id"]}) in ([], None)
    tasks = client.request("GET", "/api/tasks/", query={"project": made["id"]})
    assert not (tasks.get("tasks") if isinstance(tasks, dict) else tasks)  # nothing imported into it
