"""`autolabel serve labelstudio`: the Label Studio ML backend protocol on 127.0.0.1 with the stand-in models —
the run's labels for its images (no model), fresh labels stored in the run for new ones, a box becomes the
segmenter's mask, `/v1/label` equals `Labeler.label`, batching under load, and every bad request a 4xx with
the server alive after it."""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from autolabel.api import Labeler
from autolabel.export.labelstudio import label_config
from autolabel.run.run import Run
from autolabel.serve.backend import Backend
from autolabel.serve.engine import Engine
from autolabel.serve.http import Server
from autolabel.serve.sources import Sources
from autolabel.tool_rle import ls_decode
from tests.fakes import FakeDetector, FakeSegmenter
from tests.helpers import REPO, scene

CONFIG = label_config(["square", "ring"])


@dataclass
class Live:
    url: str
    engine: Engine
    run: Path
    root: Path
    token: str | None = None

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=h), timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def task(self, rel: str, tid: int = 1) -> dict[str, Any]:
        return {"id": tid, "data": {"image": f"/data/local-files/?d=in/{rel}"}}

    def predict(self, tasks: list[dict[str, Any]], context: dict[str, Any] | None = None) -> tuple[int, Any]:
        body = {"tasks": tasks, "project": "1.1", "label_config": CONFIG, "params": {"context": context}}
        return self.post("/predict", body)


def start(labeled_run: dict[str, Path], fake_ontology_yaml: Path, token: str | None = None) -> Iterator[Live]:
    labeler = Labeler(fake_ontology_yaml, backends=(FakeDetector(), FakeSegmenter()))
    engine = Engine(labeler, labeled_run["run"], batch_size=8)
    root = labeled_run["input"].parent
    server = Server(("127.0.0.1", 0), Backend(engine, Sources(document_root=root)), token, 2**20 * 8)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_address[1]}", engine, labeled_run["run"], root, token)
    finally:
        server.shutdown()
        server.server_close()
        engine.close()


@pytest.fixture
def live(labeled_run: dict[str, Path], fake_ontology_yaml: Path) -> Iterator[Live]:
    yield from start(labeled_run, fake_ontology_yaml)


def box_context(w: int, h: int, label: str) -> dict[str, Any]:
    """What Label Studio sends when a person draws a box (10 %, 10 %, 50 % × 60 % of the image)."""
    value = {"x": 10, "y": 10, "width": 50, "height": 60, "rectanglelabels": [label]}
    item = {"original_width": w, "original_height": h, "image_rotation": 0, "type": "rectanglelabels"}
    return {"result": [{**item, "from_name": "box", "to_name": "image", "value": value}]}


def masks_of(result: list[dict[str, Any]]) -> list[np.ndarray]:
    return [ls_decode(r["value"]["rle"], r["original_height"], r["original_width"]) for r in result]


def test_the_runs_images_come_from_its_store_with_its_decisions(live: Live) -> None:
    with Run.open(live.run) as run:
        expected = {r.relpath: r for r in run.results()}
    rels = sorted(expected)
    assert live.post("/setup", {"project": "1.1", "schema": CONFIG})[1]["model_version"] == live.engine.model_version
    status, body = live.predict([live.task(rel, k) for k, rel in enumerate(rels)])
    assert status == 200 and len(body["results"]) == len(rels)
    for rel, pred in zip(rels, body["results"]):
        det = expected[rel].detections
        got = masks_of(pred["result"])
        assert len(got) == len(det)
        for i, m in enumerate(got):
            assert np.array_equal(m, det.masks[i])
        assert [r["value"]["brushlabels"][0] for r in pred["result"]] == [
            ["square", "ring"][int(k)] for k in det.class_id
        ]
    assert live.engine.stats.forward_passes == 0 and live.engine.stats.from_run == len(rels)


def test_a_new_image_is_labeled_stored_in_the_run_and_exported(live: Live) -> None:
    scene(seed=7).save(live.root / "in" / "new.png")
    status, body = live.predict([live.task("new.png")])
    assert status == 200 and body["results"][0]["result"]
    assert live.engine.stats.forward_passes == 1 and live.engine.stats.stored == 1
    status, again = live.predict([live.task("new.png")])  # now from the store: no second pass
    assert again == body and live.engine.stats.forward_passes == 1
    from autolabel.export import export_run

    export_run(live.run, ["coco"])
    coco = json.loads((live.run / "coco" / "annotations.json").read_text())
    assert "new.png" in {im["file_name"] for im in coco["images"]}


def test_a_file_name_with_a_percent_sign_is_read_as_named(live: Live) -> None:
    from urllib.parse import quote

    scene(seed=8).save(live.root / "in" / "odd%41.png")  # not oddA.png: the URL is decoded once
    task = {"id": 1, "data": {"image": "/data/local-files/?d=" + quote("in/odd%41.png")}}
    status, body = live.predict([task])
    assert status == 200 and body["results"][0]["result"], body
    with Run.open(live.run) as run:
        assert "odd%41.png" in {r for r, _, _ in run.images()}


def test_a_box_drawn_by_a_person_becomes_the_segmenters_mask(live: Live) -> None:
    img = np.asarray(Image.open(live.root / "in" / "g.png").convert("RGB"))
    h, w = img.shape[:2]
    box = [w * 0.1, h * 0.1, w * 0.6, h * 0.7]
    context = box_context(w, h, "ring")
    status, body = live.predict([live.task("g.png")], context)
    assert status == 200
    (region,) = body["results"][0]["result"]
    assert region["value"]["brushlabels"] == ["ring"]
    expected = FakeSegmenter().segment([img], [np.array([box])])[0][0]
    assert np.array_equal(masks_of([region])[0], expected)
    assert live.engine.stats.interactive == 1


def test_the_json_api_gives_what_labeler_label_gives(live: Live, fake_ontology_yaml: Path) -> None:
    path = live.root / "in" / "c.jpg"
    status, body = live.post("/v1/label", None, {"Content-Type": "image/jpeg"}, raw=path.read_bytes())
    assert status == 200
    (det,) = Labeler(fake_ontology_yaml, backends=(FakeDetector(), FakeSegmenter())).label([path])
    assert [d["class"] for d in body["detections"]] == [["square", "ring"][int(k)] for k in det.class_id]
    assert np.allclose([d["box"] for d in body["detections"]], det.xyxy)
    from pycocotools import mask as mask_utils

    for d, m in zip(body["detections"], det.masks):
        assert np.array_equal(mask_utils.decode({"size": d["mask"]["size"], "counts": d["mask"]["counts"]}) > 0, m)
    status, same = live.post("/v1/label", {"image": base64.b64encode(path.read_bytes()).decode()})
    assert status == 200 and same["detections"] == body["detections"]


def test_every_bad_request_is_a_4xx_with_a_reason_and_the_server_stays_up(live: Live, tmp_path: Path) -> None:
    (live.root / "in" / "notes.png").write_text("not an image")
    Image.new("1", (20000, 20000)).save(live.root / "in" / "bomb.png")  # 400 MP, a few kB
    cases = [
        (live.post("/predict", None, raw=b"{not json"), 400, "not JSON"),
        (live.post("/predict", None, raw=b"[" * 100000 + b"]" * 100000), 400, "nested deeper"),
        (live.post("/predict", {"tasks": []}), 400, "non-empty list"),
        (live.post("/predict", {"tasks": [{"id": 1, "data": {}}], "label_config": "<View/>"}), 422, "no <Image"),
        (live.post("/setup", {"schema": label_config(["zebra"])}), 422, "no label of the config"),
        (live.predict([live.task("notes.png")]), 422, "not an image"),
        (live.predict([live.task("bomb.png")]), 422, "too large"),
        (live.predict([{"id": 1, "data": {"image": "/data/local-files/?d=in/../../etc/passwd"}}]), 422, "outside"),
        (live.predict([{"id": 1, "data": {"image": "/data/local-files/?d=/etc/passwd"}}]), 422, "outside"),
        (live.predict([{"id": 1, "data": {"image": "file:///etc/passwd"}}]), 422, "not served"),
        (live.predict([live.task("missing.png")]), 422, "does not exist"),
        (live.post("/v1/label", None, {"Content-Type": "image/png"}, raw=b"\x89PNG junk"), 422, "image"),
        (live.post("/nowhere", {}), 404, "no such endpoint"),
    ]
    for (status, body), want, reason in cases:
        assert status == want and reason in body["error"], (status, body)
    req = urllib.request.Request(live.url + "/predict", data=b"x", method="POST")
    req.add_header("Content-Length", str(200 * 2**20))  # 200 MB announced: refused before it is read
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 413
    mixed = live.predict([live.task("c.jpg", 1), live.task("notes.png", 2)])  # one bad task fails alone
    assert mixed[0] == 200 and mixed[1]["results"][0]["result"] and "not an image" in mixed[1]["results"][1]["error"]
    assert live.get("/health") == (
        200,
        {"status": "UP", "model_class": "autolabel", "model_version": live.engine.model_version},
    )


def test_a_token_is_checked_on_every_request(labeled_run: dict, fake_ontology_yaml: Path) -> None:
    for live in start(labeled_run, fake_ontology_yaml, token="s3cret"):
        assert live.get("/health", {"Authorization": "Bearer wrong"})[0] == 401
        assert live.get("/health", {"Authorization": ""})[0] == 401
        basic = base64.b64encode(b"labelstudio:s3cret").decode()
        assert live.get("/health", {"Authorization": f"Basic {basic}"})[0] == 200
        assert live.post("/predict", {}, {"Authorization": "Token nope"})[0] == 401
        assert live.get("/health")[0] == 200


def test_200_concurrent_requests_are_batched_and_none_is_lost_or_duplicated(live: Live) -> None:
    for k in range(20):
        scene(width=120 + 8 * k, height=90 + 6 * k, seed=100 + k).save(live.root / "in" / f"load{k}.png")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda i: live.predict([live.task(f"load{i % 20}.png", i)]), range(200)))
    assert all(status == 200 and body["results"][0]["result"] for status, body in answers)
    stats = live.engine.stats
    assert stats.requests == 200 and stats.forward_passes < 200
    with Run.open(live.run) as run:
        rels = [r for r, _, _ in run.images()]
    assert len(rels) == len(set(rels)) == 9 + 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 300_000  # kB: flat, not per request


def test_the_command_refuses_open_addresses_and_stops_cleanly_on_sigterm(
    labeled_run: dict, fake_ontology_yaml: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "autolabel.cli", "serve", "labelstudio", str(fake_ontology_yaml)]
    r = subprocess.run([*args, "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--allow-remote" in r.stderr
    r = subprocess.run(
        [*args, "--host", "0.0.0.0", "--allow-remote"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 2 and "needs a token" in r.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        r = subprocess.run(
            [*args, "--port", str(busy.getsockname()[1])], capture_output=True, text=True, env=env, timeout=120
        )
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr and "--port" in r.stderr
    root = labeled_run["input"].parent
    proc = subprocess.Popen(
        [*args, "--run", str(labeled_run["run"]), "--port", "0", "--document-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split(" on ")[1].split()[0]
    live = Live(url, None, labeled_run["run"], root)  # type: ignore[arg-type]
    assert live.predict([live.task("c.jpg")])[0] == 200
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped: 1 requests" in out and "1 from the run" in out
    shutil.rmtree(labeled_run["run"] / "coco", ignore_errors=True)
