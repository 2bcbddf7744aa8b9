"""`autolabel serve` on this machine, over loopback HTTP, as Label Studio calls it:

1. interactive latency: a box drawn by a person → the segmenter's mask (`/predict` with a context), real-size
   SAM 2.1-hiera-tiny architecture (random weights), 640×480 images, median and p90 of 20 requests;
2. load: 200 concurrent `/predict` requests (50 at a time) for 20 new images of mixed sizes, with the tiny
   test models (the real-size detector takes ≈20 s per image on this CPU): wall time, forward passes
   (requests are batched), and the process's resident memory after each quarter of them.

    python -m bench.serve [--requests 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import emit
from bench.labeling import K_PROMPTS, build_real_size, ontology
from tests.helpers import scene

CONFIG_LABELS = [q.replace(" ", "_") for q in K_PROMPTS]


def _server(ont: Path, root: Path) -> tuple[Any, Any, str]:
    from autolabel.api import Labeler
    from autolabel.serve.backend import Backend
    from autolabel.serve.engine import Engine
    from autolabel.serve.http import Server
    from autolabel.serve.sources import Sources

    engine = Engine(Labeler(ont, device="cpu"), None, batch_size=8)
    server = Server(("127.0.0.1", 0), Backend(engine, Sources(document_root=root)), None, 2**26)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, engine, f"http://127.0.0.1:{server.server_address[1]}"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(url + "/predict", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as r:
        return dict(json.loads(r.read()))


def run(requests: int, work: Path) -> dict[str, Any]:
    from autolabel.export.labelstudio import label_config
    from tests.tiny_models import build_tiny_gdino, build_tiny_sam2

    real = ontology(build_real_size(work / "models"), 0.3)
    tiny = ontology({"gdino": build_tiny_gdino(work / "tiny-gdino"), "sam2": build_tiny_sam2(work / "tiny-sam2")}, 0.0)
    images = work / "in"
    images.mkdir()
    for k in range(20):
        scene(320 + 16 * k, 240 + 12 * k, seed=k).save(images / f"img{k}.jpg", quality=90)
    scene(640, 480, seed=99).save(images / "big.jpg", quality=90)
    config = label_config(CONFIG_LABELS)
    server, engine, url = _server(real, work)

    def task(name: str, tid: int) -> dict[str, Any]:
        return {"id": tid, "data": {"image": f"/data/local-files/?d=in/{name}"}}

    box = {"x": 5, "y": 5, "width": 40, "height": 40, "rectanglelabels": ["red_box"]}
    ctx = {"result": [{"original_width": 640, "original_height": 480, "type": "rectanglelabels", "value": box}]}
    latencies = []
    for i in range(21):
        t = time.perf_counter()
        _post(url, {"tasks": [task("big.jpg", 1)], "label_config": config, "params": {"context": ctx}})
        if i:  # the first warms the model up
            latencies.append(time.perf_counter() - t)
    server.shutdown()
    server.server_close()
    engine.close()
    server, engine, url = _server(tiny, work)
    t = time.perf_counter()
    answers: list[bool] = []  # only whether each was answered: the bench keeps no response
    rss = []
    rounds = 4
    for half in range(rounds):  # the resident memory after each round: flat, not growing per request
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers += list(
                pool.map(
                    lambda i: "results" in _post(url, {"tasks": [task(f"img{i % 20}.jpg", i)], "label_config": config}),
                    range(half * requests // rounds, (half + 1) * requests // rounds),
                )
            )
        rss.append(_rss_mb())
    wall = time.perf_counter() - t
    stats = engine.stats.to_json()
    server.shutdown()
    server.server_close()
    engine.close()
    lat = sorted(latencies)
    return {
        "interactive_box_to_mask_s": {"median": statistics.median(lat), "p90": lat[int(0.9 * len(lat)) - 1]},
        "load": {
            "requests": requests,
            "answered": sum(answers),
            "wall_s": round(wall, 2),
            "forward_passes": stats["forward_passes"],
            "images_through_models": stats["images"],
            "rss_mb_after_each_quarter": rss,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(a.requests, Path(tmp))
    emit(result, a.json)


if __name__ == "__main__":
    main()
