"""Ray scaling with a simulated model (a sleep per image inside the fake detector): 1 vs 2 workers and
the one-process executor on the same batches. Part of `make bench`; prints JSON too."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tests.helpers import write_images

ONTOLOGY = {
    "ontology": {"red square": "square", "blue ring": "ring"},
    "detector": {"backend": "tests.fakes:FakeDetector"},
    "segmenter": {"backend": "tests.fakes:FakeSegmenter"},
}


def ray_scaling(images: int = 64, delay: float = 0.1, batch: int = 4) -> dict:
    import ray

    from autolabel.config.load import parse_ontology
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RayOptions, RunSettings

    os.environ["AUTOLABEL_FAKE_DELAY"] = str(delay)
    work = Path(tempfile.mkdtemp(prefix="autolabel-ray-bench-"))
    write_images(work / "in", [f"im{i:04d}.png" for i in range(images)])
    ont = parse_ontology(ONTOLOGY)
    base = RunSettings(batch_size=batch, device="cpu")
    out: dict = {"images": images, "model_s_per_image": delay, "batch": batch}
    s = run_labeling(ont, work / "in", work / "local", base)
    out["local_img_s"] = images / s.stage_seconds["inference"]  # the model loop, models already loaded
    t = time.perf_counter()
    ray.init(
        address="local",
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "AUTOLABEL_FAKE_DELAY": str(delay)}
        },
    )
    out["ray_start_s"] = time.perf_counter() - t
    try:
        for workers in (1, 2):
            s = run_labeling(ont, work / "in", work / f"ray{workers}", replace(base, ray=RayOptions(workers=workers)))
            # steady state: from the first result to the last (worker start = model loading, reported apart)
            out[f"ray{workers}_img_s"] = (images - workers * batch) / s.stage_seconds["ray_steady"]
            out[f"ray{workers}_start_s"] = s.stage_seconds["ray_first_result"]
    finally:
        ray.shutdown()
    out["scaling_2_vs_1"] = out["ray2_img_s"] / out["ray1_img_s"]
    out["ray1_vs_local"] = out["ray1_img_s"] / out["local_img_s"]
    return out


if __name__ == "__main__":
    r = ray_scaling()
    print(json.dumps(r, indent=2))
    print(
        f"\nRay, simulated model {r['model_s_per_image'] * 1000:.0f} ms/image, {r['images']} images: "
        f"1 worker {r['ray1_img_s']:.2f} img/s, 2 workers {r['ray2_img_s']:.2f} img/s "
        f"(×{r['scaling_2_vs_1']:.2f}, goal ≥ 1.7); one-process {r['local_img_s']:.2f} img/s "
        f"(Ray at 1 worker ÷ one-process: {r['ray1_vs_local']:.2f}); steady state, not counted: Ray start "
        f"{r['ray_start_s']:.1f} s, first result after {r['ray1_start_s']:.1f} s (1 worker) / "
        f"{r['ray2_start_s']:.1f} s (2 workers)"
    )
