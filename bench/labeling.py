"""`make bench`: speed and memory of the labeling engine, measured as ratios in one run.

Builds models with random weights offline: the real-size architectures (Grounding DINO-T config,
SAM 2.1-hiera-tiny config — transformers' defaults for both) and the tiny test ones. Prints per-stage
times, images/s, peak RSS and:

  1. end-to-end time ÷ sum of pure model-forward time (same images, same batches)     goal ≤ 1.10
  2. detector forward passes per image for a K-prompt ontology (vs K for a per-prompt loop)  goal 1
  3. peak RSS at 1,000 images ÷ at 10 images (tiny models)                             goal ≤ 1.2
  4. rerun of a finished run: model forwards and seconds per 1,000 images              goal 0, < 5 s
  5. `autolabel --help` wall time (no torch import)                                     goal < 1 s

Usage: python -m bench.labeling [--real-images N] [--skip-real] [--skip-ray] [--many N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
K_PROMPTS = ["person", "car", "dog", "cat", "red box", "blue circle", "traffic light", "bird", "tree", "truck"]


def build_real_size(root: Path) -> dict[str, Path]:
    """Grounding DINO-T (the hub's own config, tokenizer and preprocessor config from tests/fixtures) and
    SAM 2.1-hiera-tiny architectures with random weights (no download)."""
    import torch
    from transformers import (
        AutoProcessor,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        Sam2Config,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
    )

    from tests.tiny_models import FIXTURES

    hub = FIXTURES / "grounding-dino-tiny"
    torch.manual_seed(0)
    gd = root / "gdino-T"
    GroundingDinoForObjectDetection(GroundingDinoConfig.from_pretrained(str(hub))).eval().save_pretrained(gd)
    AutoProcessor.from_pretrained(str(hub)).save_pretrained(gd)
    s2 = root / "sam2.1-tiny"
    Sam2Model(Sam2Config()).eval().save_pretrained(s2)
    Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(s2)
    return {"gdino": gd, "sam2": s2}


def make_images(root: Path, n: int, size: tuple[int, int]) -> Path:
    from tests.helpers import scene

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scene(*size, seed=i).save(root / f"img{i:05d}.jpg", quality=90)
    return root


def ontology(models: dict[str, Path], threshold: float) -> Path:
    p = Path(tempfile.mkdtemp()) / "bench.yaml"
    lines = ["ontology:"] + [f"  {q}: {q.replace(' ', '_')}" for q in K_PROMPTS]
    lines += [
        "detector:",
        "  backend: grounding_dino",
        f"  model: {models['gdino']}",
        f"  box_threshold: {threshold}",
        f"  candidate_threshold: {threshold}",
        "  max_candidates: 5",  # ≤ 5 boxes per image reach SAM
        "segmenter:",
        f"  model: {models['sam2']}",
        "postprocess:",
        "  max_detections: 5",
    ]
    p.write_text("\n".join(lines) + "\n")
    return p


def run_child(args: list[str]) -> dict:
    """Run one labeling pass in a fresh process so its peak RSS is its own."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.labeling", "--child", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if out.returncode != 0:
        raise SystemExit(f"bench child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(ont: str, images: str, out: str, batch: int, export: bool) -> None:
    from autolabel.config.load import load_ontology
    from autolabel.export import export_run
    from autolabel.run.labeling import run_labeling
    from autolabel.run.settings import RunSettings

    t0 = time.perf_counter()
    summary = run_labeling(load_ontology(ont), images, out, RunSettings(batch_size=batch, device="cpu"))
    t_label = time.perf_counter() - t0
    t_export = 0.0
    if export:
        t1 = time.perf_counter()
        export_run(out, ["coco", "yolo"])
        t_export = time.perf_counter() - t1
    forward = summary.stage_seconds.get("detector", 0.0) + summary.stage_seconds.get("segmenter", 0.0)
    print(
        json.dumps(
            {
                "images": summary.images_total,
                "processed": summary.processed,
                "label_s": t_label,
                "export_s": t_export,
                "forward_s": forward,
                "stages": summary.stage_seconds,
                "detector_passes": summary.detector_passes,
                "segmenter_passes": summary.segmenter_passes,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def help_time() -> float:
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autolabel.cli", "--help"], cwd=REPO, capture_output=True, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=5, metavar=("ONT", "IMAGES", "OUT", "BATCH", "EXPORT"))
    ap.add_argument("--real-images", type=int, default=4, help="images for the real-size run (slow on CPU)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--many", type=int, default=1000, help="images for the memory/rerun run (tiny models)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    if a.child:
        ont, images, out, batch, export = a.child
        child(ont, images, out, int(batch), export == "1")
        return

    from tests.tiny_models import build_tiny_gdino, build_tiny_sam2

    work = Path(tempfile.mkdtemp(prefix="autolabel-bench-"))
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_version()}, CPU"
    }
    try:
        tiny = {"gdino": build_tiny_gdino(work / "tiny-gdino"), "sam2": build_tiny_sam2(work / "tiny-sam2")}
        tiny_ont = ontology(tiny, 0.2)
        if not a.skip_real:
            real = build_real_size(work / "real")
            imgs = make_images(work / "real-images", a.real_images, (640, 480))
            r = run_child([str(ontology(real, 0.3)), str(imgs), str(work / "real-out"), "2", "1"])
            results["real"] = r
        few = make_images(work / "few", 10, (320, 240))
        many = make_images(work / "many", a.many, (320, 240))
        results["tiny_10"] = run_child([str(tiny_ont), str(few), str(work / "out10"), "4", "1"])
        results["tiny_many"] = run_child([str(tiny_ont), str(many), str(work / "outmany"), "4", "1"])
        results["rerun"] = run_child([str(tiny_ont), str(many), str(work / "outmany"), "4", "0"])
        results["help_s"] = help_time()
        if not a.skip_ray:
            from bench.ray import ray_scaling

            results["ray"] = ray_scaling()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, a.many)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


def report(r: dict, many: int) -> None:
    print(f"\nautolabel benchmark — {r['machine']}\n")
    rows = []
    for key, label in (
        ("real", "real-size GDINO-T + SAM2.1-tiny, 640×480"),
        ("tiny_10", "tiny models, 10 images"),
        ("tiny_many", f"tiny models, {many} images"),
    ):
        if key not in r:
            continue
        x = r[key]
        st = x["stages"]
        rows.append(
            (
                label,
                x["images"],
                x["images"] / x["label_s"],
                x["label_s"] / max(x["forward_s"], 1e-9),
                st.get("decode", 0),
                st.get("detector", 0),
                st.get("segmenter", 0),
                # pre/post-processing around the forwards (resize, mapping, upsampling, RLE)
                st.get("prepare", 0)
                + st.get("detect", 0)
                - st.get("detector", 0)
                + st.get("segment", 0)
                - st.get("segmenter", 0)
                + st.get("finish", 0),
                st.get("store", 0),
                x["export_s"],
                x["peak_rss_mb"],
            )
        )
    print(
        "| run | images | img/s | e2e ÷ forward | decode s | detector s | segmenter s | pre/post s | store s "
        "| export s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row[0]} | {row[1]} | {row[2]:.2f} | {row[3]:.2f} | "
            + " | ".join(f"{v:.2f}" for v in row[4:10])
            + f" | {row[10]:.0f} |"
        )
    main_run = r.get("real", r["tiny_many"])
    n = main_run["images"]
    print(
        f"\n1. end-to-end ÷ pure forward ({'real-size' if 'real' in r else 'tiny'}): "
        f"{main_run['label_s'] / main_run['forward_s']:.3f}  (goal ≤ 1.10)"
    )
    batches = -(-n // (2 if "real" in r else 4))
    print(
        f"2. detector forward passes, {len(K_PROMPTS)} prompts: {main_run['detector_passes']} for {n} images in "
        f"{batches} batches = {main_run['detector_passes'] / batches:.2f} per batch, every image seen once per pass "
        f"→ 1 per image (a per-prompt loop: {len(K_PROMPTS)} per image, {len(K_PROMPTS) * n} passes)"
    )
    ratio = r["tiny_many"]["peak_rss_mb"] / r["tiny_10"]["peak_rss_mb"]
    print(
        f"3. peak RSS {many} images ÷ 10 images: {r['tiny_many']['peak_rss_mb']:.0f} / "
        f"{r['tiny_10']['peak_rss_mb']:.0f} MB = {ratio:.3f}  (goal ≤ 1.2)"
    )
    rr = r["rerun"]
    print(
        f"4. rerun of a finished run: {rr['detector_passes'] + rr['segmenter_passes']} model forwards, "
        f"{rr['label_s'] / rr['images'] * 1000:.2f} s per 1,000 images  (goal 0, < 5 s)"
    )
    print(f"5. `autolabel --help`: {r['help_s']:.3f} s  (goal < 1 s)")
    if "ray" in r:
        x = r["ray"]
        print(
            f"6. Ray, simulated model {x['model_s_per_image'] * 1000:.0f} ms/image: 2 workers ÷ 1 worker "
            f"{x['scaling_2_vs_1']:.2f} (goal ≥ 1.7; {x['ray1_img_s']:.2f} → {x['ray2_img_s']:.2f} img/s steady); "
            f"Ray at 1 worker ÷ one-process {x['ray1_vs_local']:.2f}; worker start {x['ray1_start_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
