"""Real-size models on a GPU: random weights in the real architectures, built from hub configs (no
download), run through the real engine on real images. Part of `make bench`; without CUDA it says so
and exits 0 (CI and the 2-core development machine have no GPU).

    python -m bench.cuda [--pairs gdino+sam2 florence2+sam2 sam3] [--batches 1 4 8]
                               [--precisions fp16 bf16] [--images 64] [--device cuda] [--json FILE]

Per pipeline, batch size and precision: img/s of the model loop, measured utilisation (time inside the
models' forward calls, each synchronised, ÷ wall time of the model loop), peak GPU memory. Hub files:
Grounding DINO-T from tests/fixtures (the hub's own); SAM 2.1-tiny, Florence-2-base and SAM 3 from
../shared/hub-files (configs derived where the hub's were not found; see its MANIFEST.md) — a pipeline
whose files are missing is skipped with the path it needs. Florence-2 generates at most 64 tokens here
(random weights would otherwise always run to the 1024-token limit; real outputs are short).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HUB = REPO.parent / "shared" / "hub-files"
COCO = REPO.parent / "shared" / "data" / "coco-sample" / "coco128_train2017" / "images"
SOURCES = {
    "gdino": REPO / "tests" / "fixtures" / "grounding-dino-tiny",
    "sam2": HUB / "facebook--sam2.1-hiera-tiny",
    "florence2": HUB / "florence-community--Florence-2-base",
    "sam3": HUB / "facebook--sam3",
}
MODEL_CLASSES = {
    "gdino": "GroundingDinoForObjectDetection",
    "sam2": "Sam2Model",
    "florence2": "Florence2ForConditionalGeneration",
    "sam3": "Sam3Model",
}
PROMPTS = [
    "person",
    "car",
    "dog",
    "cat",
    "chair",
    "cup",
    "bottle",
    "bicycle",
    "traffic light",
    "fire hydrant",
    "bench",
    "umbrella",
]


def build(name: str, root: Path) -> Path:
    """Random weights in the architecture of `SOURCES[name]`'s config, saved with its processor files."""
    import torch
    import transformers

    src = SOURCES[name]
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{name}: needs the hub files in {src}")
    out = root / name
    if (out / "config.json").is_file():
        return out
    config = transformers.AutoConfig.from_pretrained(str(src))
    torch.manual_seed(0)
    getattr(transformers, MODEL_CLASSES[name])(config).eval().save_pretrained(out)
    transformers.AutoProcessor.from_pretrained(str(src)).save_pretrained(out)
    for f in src.glob("*.json"):  # generation config, tokenizer files the processor does not rewrite
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return out


def ontology(pair: str, models: dict[str, Path]) -> Any:
    from autolabel.config.load import parse_ontology

    det, _, seg = pair.partition("+")
    backend = {"gdino": "grounding_dino", "florence2": "florence2", "sam3": "sam3"}[det]
    spec: dict[str, Any] = {
        "ontology": {p: p.replace(" ", "_") for p in PROMPTS},
        "detector": {
            "backend": backend,
            "model": str(models[det]),
            "box_threshold": 0.3,
            "candidate_threshold": 0.3,
            "max_candidates": 100,
        },
    }
    if det == "florence2":  # random weights never stop generating: cap at a typical real output length
        spec["detector"]["max_new_tokens"] = 64
    spec["segmenter"] = {"backend": "sam2", "model": str(models[seg])} if seg else "none"
    return parse_ontology(spec)


def measure(
    pair: str, models: dict[str, Path], images: Path, batch: int, precision: str, device: str, work: Path
) -> dict[str, Any]:
    import torch

    from autolabel.config.plan import make_plan
    from autolabel.inference.models import load_models
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    ont = ontology(pair, models)
    settings = RunSettings(batch_size=batch, device=device, precision=precision)
    det, seg = load_models(make_plan(ont), settings.device, settings.precision)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    out = work / f"{pair}-{batch}-{precision}"
    s = run_labeling(ont, images, out, settings, backends=(det, seg))
    wall = s.stage_seconds["inference"]
    forward = det.stats.seconds + (seg.stats.seconds if seg is not None else 0.0)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "pair": pair,
        "batch": batch,
        "precision": precision,
        "images": s.processed,
        "img_s": s.processed / wall,
        "utilisation": forward / wall,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
        "waits_ms_per_image": {
            k: round(v / max(s.processed, 1) * 1000, 1)
            for k, v in s.stage_seconds.items()
            if k.startswith("models_wait")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", nargs="+", default=["gdino+sam2", "florence2+sam2", "sam3"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--precisions", nargs="+", default=["fp16", "bf16"])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_cuda: no CUDA device here, skipped (run it on a GPU host)")
        return
    work = Path(tempfile.mkdtemp(prefix="autolabel-cuda-"))
    rows, skipped = [], {}
    try:
        images = work / "in"
        images.mkdir()
        src = sorted(COCO.glob("*.jpg"))[: a.images]
        if not src:
            raise SystemExit(f"needs the COCO sample images at {COCO}")
        for p in src:
            shutil.copy(p, images / p.name)
        for pair in a.pairs:
            try:
                models = {n: build(n, work / "models") for n in pair.split("+")}
            except FileNotFoundError as e:
                skipped[pair] = str(e)
                continue
            for precision in a.precisions:
                for batch in a.batches:
                    t = time.perf_counter()
                    rows.append(measure(pair, models, images, batch, precision, a.device, work))
                    print(json.dumps(rows[-1] | {"s": round(time.perf_counter() - t, 1)}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device
    print(f"\n{name}, {len(PROMPTS)} prompts, {a.images} COCO images, random weights at real size\n")
    print("| pipeline | precision | batch | img/s | utilisation | peak GPU MB |\n|---|---|---|---|---|---|")
    for r in rows:
        mem = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else "-"
        print(f"| {r['pair']} | {r['precision']} | {r['batch']} | {r['img_s']:.1f} | {r['utilisation']:.2f} | {mem} |")
    for pair, why in skipped.items():
        print(f"skipped {pair}: {why}")
    if a.json:
        a.json.write_text(json.dumps({"device": name, "rows": rows, "skipped": skipped}, indent=2))


if __name__ == "__main__":
    main()
