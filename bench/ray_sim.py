"""Ray model replicas against the local pipeline on the simulated GPU of `bench/gpu_sim.py` (real processors
at real sizes, real COCO images, each forward a sleep of its H100 estimate; each replica is a process with
its own simulated GPU). Part of `make bench`; prints JSON too.

    python -m bench.ray_sim [--images 96] [--batch 4] [--repeat 2]

Reports the simulated utilisation (model time ÷ wall of the model loop, steady state) of the local
pipeline and of each Ray replica in the same run, and the throughput of 2 replicas against 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.gpu_sim import COCO, PROMPTS, sim_backends

DEFAULTS = {"det_ms": 30.0, "embed_ms": 6.0, "dec_ms": 2.0, "prompts": 12, "boxes": 12}


def _args() -> SimpleNamespace:
    return SimpleNamespace(**{k: type(v)(os.environ.get(f"AUTOLABEL_SIM_{k.upper()}", v)) for k, v in DEFAULTS.items()})


class SimDetectorBackend:
    """Plugin (`backend: bench.ray_sim:SimDetectorBackend`): the real Grounding DINO adapter, simulated model."""

    kind = "detector"

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Any:
        a = _args()
        return sim_backends(a, int(a.boxes))[0]


class SimSegmenterBackend:
    """Plugin: the real SAM 2 adapter with a simulated model."""

    kind = "segmenter"

    @classmethod
    def from_config(cls, cfg: Any, device: str, dtype: Any) -> Any:
        a = _args()
        return sim_backends(a, int(a.boxes))[1]


def ontology() -> Any:
    from autolabel.config.load import parse_ontology

    n = int(_args().prompts)
    return parse_ontology(
        {
            "ontology": {p: p.replace(" ", "_") for p in PROMPTS[:n]},
            "detector": {"backend": "bench.ray_sim:SimDetectorBackend", "candidate_threshold": 0.3},
            "segmenter": {"backend": "bench.ray_sim:SimSegmenterBackend"},
        }
    )


def local(images: Path, out: Path, batch: int) -> dict[str, float]:
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    a = _args()
    det, seg = sim_backends(a, int(a.boxes))
    s = run_labeling(ontology(), images, out, RunSettings(batch_size=batch), backends=(det, seg))
    wall = s.stage_seconds["inference"]
    busy = det.stats.seconds + seg.stats.seconds
    return {"img_s": s.processed / wall, "utilisation": busy / wall}


def on_ray(images: Path, out: Path, batch: int, workers: int, per_replica: int = 3) -> dict[str, Any]:
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RayOptions, RunSettings

    opts = RayOptions(workers=workers, cpus_per_worker=0.5, batches_per_replica=per_replica)
    s = run_labeling(ontology(), images, out, replace(RunSettings(batch_size=batch, device="cpu"), ray=opts))
    steady = s.replicas
    n_steady = sum(r["batches"] - 1 for r in steady) * batch
    wall = max(r["steady_s"] for r in steady)
    return {
        "replica_utilisation": [r["utilisation"] for r in steady],
        "img_s": n_steady / wall,
        "first_result_s": s.stage_seconds.get("ray_first_result", 0.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not COCO.is_dir():
        raise SystemExit(f"needs the COCO sample images at {COCO}")
    import ray

    work = Path(tempfile.mkdtemp(prefix="autolabel-raysim-"))
    r: dict[str, Any] = {"images": a.images, "batch": a.batch, "sim": vars(_args())}
    try:
        (work / "in").mkdir()
        for p in sorted(COCO.glob("*.jpg"))[: a.images]:
            shutil.copy(p, work / "in" / p.name)
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        t = time.perf_counter()
        ray.init(
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
            _node_ip_address="127.0.0.1",
        )
        r["ray_start_s"] = time.perf_counter() - t
        for i in range(a.repeat):  # one run of each, interleaved: the machine's noise hits all alike
            r.setdefault("local", []).append(local(work / "in", work / f"local{i}", a.batch))
            for w in (1, 2):
                r.setdefault(f"ray{w}", []).append(on_ray(work / "in", work / f"ray{w}-{i}", a.batch, w))
            seq = on_ray(work / "in", work / f"seq-{i}", a.batch, 1, per_replica=1)  # stages one after the other
            r.setdefault("ray1_sequential", []).append(seq)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    r["local_utilisation"] = med([x["utilisation"] for x in r["local"]])
    r["ray1_replica_utilisation"] = med([u for x in r["ray1"] for u in x["replica_utilisation"]])
    r["ray2_replica_utilisation"] = med([u for x in r["ray2"] for u in x["replica_utilisation"]])
    r["ray1_sequential_utilisation"] = med([u for x in r["ray1_sequential"] for u in x["replica_utilisation"]])
    r["replica_vs_local"] = r["ray1_replica_utilisation"] / r["local_utilisation"]
    r["scaling_2_vs_1"] = med([x["img_s"] for x in r["ray2"]]) / med([x["img_s"] for x in r["ray1"]])
    print(json.dumps(r, indent=2))
    print(
        f"\nsimulated GPU, {a.images} COCO images, batch {a.batch}: local pipeline utilisation "
        f"{r['local_utilisation']:.2f}; one Ray replica {r['ray1_replica_utilisation']:.2f} "
        f"(÷ local {r['replica_vs_local']:.2f}, goal ≥ 0.9; stages one after the other: "
        f"{r['ray1_sequential_utilisation']:.2f}); two replicas {r['ray2_replica_utilisation']:.2f} each, "
        f"×{r['scaling_2_vs_1']:.2f} the throughput of one (goal ≥ 1.8)"
    )
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
