"""`autolabel serve labelstudio` connected to a real Label Studio (its own environment, on 127.0.0.1): Label
Studio's own API adds the backend, imports tasks, retrieves predictions (decoded with label-studio-sdk's
brush decoder: the run's masks for its images, the models' for a new one) and asks for an interactive mask
for a box."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from autolabel.api import Labeler
from autolabel.run.run import Run
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import scene
from tests.serve.test_serve import CONFIG, box_context, start
from tests.tools import TOKEN, run_tool

READ_BACK = """
import json, sys
import numpy as np
from label_studio_sdk import LabelStudio
from label_studio_sdk.converter.brush import decode_rle
ls = LabelStudio(base_url=sys.argv[1], api_key=sys.argv[2])
masks, versions = {}, set()
for t in ls.tasks.list(project=int(sys.argv[3]), fields="all"):
    for p in ls.predictions.list(task=t.id):
        versions.add(p.model_version)
        for i, r in enumerate(p.result):
            h, w = r["original_height"], r["original_width"]
            alpha = np.reshape(decode_rle(r["value"]["rle"]), [h, w, 4])[:, :, 3]
            masks[f"{t.data['image'].split('=')[1]}|{i}|{r['value']['brushlabels'][0]}"] = alpha > 0
np.savez_compressed(sys.argv[4], **masks)
print(json.dumps(sorted(versions)))
"""


def api(url: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read()[:2000]!r}") from None
    return json.loads(text) if text else None


def test_label_studio_gets_the_runs_labels_fresh_labels_and_interactive_masks(
    labeled_run: dict, fake_ontology_yaml: Path, label_studio: str, tmp_path: Path
) -> None:
    scene(seed=11).save(labeled_run["input"] / "added-later.png")
    for live in start(labeled_run, fake_ontology_yaml):
        project = api(label_studio, "POST", "/api/projects", {"title": "served", "label_config": CONFIG})["id"]
        ml = api(label_studio, "POST", "/api/ml", {"url": live.url, "project": project, "is_interactive": True})
        assert ml["state"] == "CO", ml  # connected: /health and /setup answered
        rels = ["c.jpg", "g.png", "added-later.png"]
        api(
            label_studio,
            "POST",
            f"/api/projects/{project}/import",
            [{"image": f"/data/local-files/?d=in/{r}"} for r in rels],
        )
        api(
            label_studio,
            "POST",
            f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
            {"selectedItems": {"all": True, "excluded": []}},
        )
        out = tmp_path / "masks.npz"
        versions = json.loads(run_tool("labelstudio", READ_BACK, label_studio, TOKEN, str(project), str(out)))
        assert versions == [live.engine.model_version]
        got = dict(np.load(out))
        with Run.open(labeled_run["run"]) as run:
            stored = {r.relpath: r.detections for r in run.results(relpaths=["c.jpg", "g.png"])}
        labeler = Labeler(fake_ontology_yaml, backends=(FakeDetector(), FakeSegmenter()))
        stored["added-later.png"] = labeler.label([labeled_run["input"] / "added-later.png"])[0]
        expected = {
            f"in/{rel}|{i}|{['square', 'ring'][int(det.class_id[i])]}": det.masks[i]
            for rel, det in stored.items()
            for i in range(len(det))
        }
        assert sorted(got) == sorted(expected)
        for key, mask in expected.items():
            assert np.array_equal(got[key], mask), key
        assert live.engine.stats.from_run == 2 and live.engine.stats.stored == 1  # the new image is in the run now

        task = next(
            t
            for t in api(label_studio, "GET", f"/api/tasks?project={project}")["tasks"]
            if "g.png" in t["data"]["image"]
        )
        img = np.asarray(Image.open(labeled_run["input"] / "g.png").convert("RGB"))
        h, w = img.shape[:2]
        context = box_context(w, h, "square")
        answer = api(
            label_studio, "POST", f"/api/ml/{ml['id']}/interactive-annotating", {"task": task["id"], "context": context}
        )
        (region,) = answer["data"]["result"]
        from autolabel.tool_rle import ls_decode

        expected_mask = FakeSegmenter().segment([img], [np.array([[w * 0.1, h * 0.1, w * 0.6, h * 0.7]])])[0][0]
        assert np.array_equal(ls_decode(region["value"]["rle"], h, w), expected_mask)
        assert region["value"]["brushlabels"] == ["square"]
