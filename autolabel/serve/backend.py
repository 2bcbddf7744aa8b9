"""The Label Studio ML backend protocol (what Label Studio 1.23's `ml/api_connector.py` sends) and the plain
JSON API, over the engine. Pure request → response dicts; the HTTP layer is `serve.http`.

- `GET /health` → `{"status": "UP", "model_class", "model_version"}`
- `POST /setup` `{project, schema, hostname, access_token}` → `{"model_version"}`; the schema (labeling
  config) is checked against the ontology (a 422 names what does not fit)
- `POST /predict` `{tasks, label_config, params: {context}}` → `{"results": [one per task]}`: the run's labels
  for images it holds, fresh ones (stored in the run) for new images; with a context (a box, a point or a
  typed text from the person labeling): the region for it
- `POST /webhook` → acknowledged (training is not offered); `POST /v1/label` (image bytes) → detections
"""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np

from autolabel.errors import UsageError
from autolabel.serve.engine import Engine
from autolabel.serve.labelconfig import Target, read_config, regions
from autolabel.serve.sources import BadSource, Refused, Sources
from autolabel.types import Detections, RleMasks

MAX_TASKS = 1000
MAX_CONFIGS = 64  # labeling configs kept read (one per project, usually)


class Backend:
    def __init__(self, engine: Engine, sources: Sources) -> None:
        self.engine, self.sources = engine, sources
        self._targets: dict[str, Target] = {}

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "autolabel", "model_version": self.engine.model_version}

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        self._target(body.get("schema"))
        host, token = body.get("hostname"), body.get("access_token")
        if isinstance(host, str) and host.startswith(("http://", "https://")) and not self.sources.labelstudio_url:
            self.sources.labelstudio_url = host
        if isinstance(token, str) and token and not self.sources.labelstudio_token:
            self.sources.labelstudio_token = token
        return {"model_version": self.engine.model_version}

    def _target(self, config: Any) -> Target:
        key = config if isinstance(config, str) else ""
        if key not in self._targets:
            if len(self._targets) >= MAX_CONFIGS:  # a client sending ever new configs cannot grow it
                self._targets.clear()
            try:
                self._targets[key] = read_config(config, self.engine.classes)
            except UsageError as e:
                raise Refused(e.message, hint=e.hint) from None
        return self._targets[key]

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
            raise Refused("'tasks' must be a non-empty list of task objects", 400)
        if len(tasks) > MAX_TASKS:
            raise Refused(f"{len(tasks)} tasks in one request: at most {MAX_TASKS}", 413)
        target = self._target(body.get("label_config"))
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        context = params.get("context") if isinstance(params, dict) else None
        self.engine.stats.add(requests=1)
        if isinstance(context, dict) and context.get("result"):
            return {
                "results": [self._interactive(tasks[0], context, target)],
                "model_version": self.engine.model_version,
            }
        if len(tasks) == 1:  # one task: its failure is the request's (a 4xx with the reason)
            return {"results": [self._prediction(tasks[0], target)], "model_version": self.engine.model_version}
        results = []
        for task in tasks:
            try:
                results.append(self._prediction(task, target))
            except BadSource as e:
                self.engine.stats.add(errors=1)
                results.append(
                    {"result": [], "score": 0.0, "model_version": self.engine.model_version, "error": e.message}
                )
        return {"results": results, "model_version": self.engine.model_version}

    def located(self, task: dict[str, Any], target: Target) -> tuple[str, str]:
        """Where the task's image is (see `Sources.located`)."""
        data = task.get("data")
        ref = data.get(target.image_key) if isinstance(data, dict) else None
        if not isinstance(ref, str):
            raise BadSource(f"task {task.get('id')}: no image under data.{target.image_key}")
        return self.sources.located(ref)

    def image(self, task: dict[str, Any], target: Target) -> np.ndarray:
        """The task's image, read (and checked) from where Label Studio serves it."""
        return self.sources.read(*self.located(task, target))

    def labels(self, task: dict[str, Any], target: Target) -> tuple[Detections, int, int]:
        kind, where = self.located(task, target)
        rel = self.engine.relpath(kind, where)
        sig = self.engine.signature(kind, where) if rel is not None else None
        if rel is not None:
            stored = self.engine.stored(rel, sig)
            if stored is not None:
                return stored
        img = self.sources.read(kind, where)
        h, w = img.shape[:2]
        cands = self.engine.candidates(img)
        self.engine.keep(rel, sig, cands, w, h)
        return self.engine.decide(cands, w, h), w, h

    def _prediction(self, task: dict[str, Any], target: Target) -> dict[str, Any]:
        det, w, h = self.labels(task, target)
        result = regions(det, self.engine.classes, target, w, h)
        score = float(np.mean(det.confidence)) if det.confidence is not None and len(det) else 0.0
        return {"result": result, "score": round(score, 4), "model_version": self.engine.model_version}

    def _interactive(self, task: dict[str, Any], context: dict[str, Any], target: Target) -> dict[str, Any]:
        from autolabel.serve.interactive import answer

        t = time.perf_counter()
        out = answer(self, task, context, target)
        self.engine.stats.add(interactive=1, interactive_seconds=time.perf_counter() - t)
        return out

    def label_image(self, data: bytes, content_type: str) -> dict[str, Any]:
        """`POST /v1/label`: image bytes (or JSON `{"image": base64}`) → the detections `Labeler.label` gives."""
        if content_type.startswith("application/json"):
            import json

            try:
                body = json.loads(data)
                data = base64.b64decode(body["image"], validate=True)
            except (ValueError, KeyError, TypeError):
                raise Refused('expected image bytes, or JSON {"image": "<base64>"}', 400) from None
        img = self.sources.read_bytes(data)
        h, w = img.shape[:2]
        self.engine.stats.add(requests=1)
        det = self.engine.decide(self.engine.candidates(img), w, h)
        return {
            "width": w,
            "height": h,
            "model_version": self.engine.model_version,
            "detections": detections_json(det, self.engine.classes),
        }


def detections_json(det: Detections, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for i in range(len(det)):
        d: dict[str, Any] = {
            "class": classes[int(det.class_id[i])],
            "class_id": int(det.class_id[i]),
            "score": None if det.confidence is None else float(det.confidence[i]),
            "prompt": det.prompt[i] if det.prompt else None,
            "box": [float(v) for v in det.xyxy[i]],
        }
        if isinstance(det.masks, RleMasks):
            rle = det.masks.rles[i]
            counts = rle["counts"]
            d["mask"] = {"size": list(rle["size"]), "counts": counts.decode() if isinstance(counts, bytes) else counts}
        out.append(d)
    return out
