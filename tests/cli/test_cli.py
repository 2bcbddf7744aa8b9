from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from tests.helpers import REPO, cli, import_blocker, write_images


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom autolabel.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "assert 'label' in r.output\n"
        "bad = [m for m in ('torch', 'transformers', 'cv2', 'pycocotools') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_validate_good_and_bad(tmp_path: Path) -> None:
    r = cli("validate", "ontologies/vehicles.yaml")
    assert r.returncode == 0 and "9 prompts → 5 classes" in r.stdout and "0: car ← 'car', 'sedan'" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "ontology:\n  car: car\ndetector:\n  backend: grounding_dinos\n  box_treshold: 0.3\n"
        "segmenter: {backend: sam22}\n"
    )
    r = cli("validate", str(bad))
    assert r.returncode == 2
    # every problem at once, each with file and key; backends get a did-you-mean too
    assert (
        f"{bad}: detector.backend: unknown detector backend 'grounding_dinos'; did you mean 'grounding_dino'?"
        in r.stderr
    )
    assert "segmenter.backend: unknown segmenter backend 'sam22'; did you mean 'sam2'?" in r.stderr
    assert "detector.box_treshold: unknown key; did you mean 'box_threshold'?" in r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.stderr


def test_label_end_to_end_with_tiny_real_models_resumes_and_is_byte_identical(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    write_images(tmp_path / "in", ["a/x.png", "b/x.png", "c.jpg"])
    ont = tmp_path / "ont.yaml"
    ont.write_text(
        "ontology:\n  red box: box\n  blue circle: circle\n  cat: cat\n"
        "detector:\n  box_threshold: 0.2\n  candidate_threshold: 0.2\n"
    )
    out = tmp_path / "out"
    args = [
        "label",
        str(ont),
        str(tmp_path / "in"),
        "-o",
        str(out),
        "--detector",
        "grounding_dino",
        "--detector-model",
        str(tiny_models["gdino"]),
        "--segmenter-model",
        str(tiny_models["sam2"]),
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "-f",
        "coco",
    ]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "3 labeled now" in r.stderr and "forward passes: detector 2" in r.stderr
    coco_path = out / "coco" / "annotations.json"
    coco = COCO(str(coco_path))
    assert [i["file_name"] for i in coco.dataset["images"]] == ["a/x.png", "b/x.png", "c.jpg"]
    assert coco.dataset["annotations"], "random weights with threshold 0.2 still give boxes"
    for ann in coco.dataset["annotations"]:
        assert ann["iscrowd"] == 0
        x, y, w, h = ann["bbox"]
        assert 0 < ann["area"] <= w * h  # mask pixels inside the mask's own box
        assert coco.annToMask(ann)[int(y) : int(y + h), int(x) : int(x + w)].sum() >= ann["area"]  # outline ⊇ mask
        assert 0 <= ann["score"] <= 1 and ann["prompt"] in {"red box", "blue circle", "cat"}
    first = coco_path.read_bytes()
    r = cli(*args)
    assert r.returncode == 0 and "0 labeled now, 3 already done" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detector_passes"] == 0 and summary["segmenter_passes"] == 0 and summary["already_done"] == 3
    assert coco_path.read_bytes() == first
    r = cli("export", str(out), "--coco-masks", "rle", "-f", "coco")
    assert r.returncode == 0
    rle = json.loads(coco_path.read_text())
    assert all(isinstance(a["segmentation"], dict) for a in rle["annotations"])


def test_offline_default_model_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    for env in ({"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}):
        t = time.perf_counter()
        r = cli(
            "label",
            "ontologies/example.yaml",
            str(tmp_path / "in"),
            "-o",
            str(out),
            env={**env, "HF_HOME": str(tmp_path / "hf")},
        )
        assert time.perf_counter() - t < 60  # no minutes of retries
        assert r.returncode == 2, r.stderr
        assert "iSEE-Laboratory/llmdet_tiny" in r.stderr and "--detector-model" in r.stderr
        assert "--segmenter-model" in r.stderr and "SEGMENTER_MODEL=DIR" in r.stderr  # both models, each's option
        if env["HF_HUB_OFFLINE"] == "1":  # what is already set is said, not suggested
            assert "HF_HUB_OFFLINE=1 is set already" in r.stderr and "set HF_HUB_OFFLINE=1 to" not in r.stderr
        assert not out.exists()  # nothing written


def test_exit_code_3_when_images_were_skipped(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png"])
    (tmp_path / "in" / "zero.jpg").write_bytes(b"")
    r = cli("label", str(fake_ontology_yaml), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q", "-f", "coco")
    assert r.returncode == 3, r.stderr
    assert (tmp_path / "out" / "skipped.txt").read_text() == "zero.jpg\tempty file (0 bytes)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "coco,pascal"], "unknown export format(s) pascal"),
        (
            ["--segmenter", "sam9"],
            "unknown segmenter backend 'sam9'; did you mean 'sam'? valid: sam2, sam, sam_hq, none",
        ),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--device", "cuda"], "device 'cuda' requested but CUDA is not available"),
        (["--device", "cpu", "--precision", "fp16"], "precision fp16 needs a CUDA GPU"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    fake_ontology_yaml: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    write_images(tmp_path / "in", ["a.png"])
    r = cli("label", str(fake_ontology_yaml), str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_backends_lists_registry() -> None:
    r = cli("backends")
    assert r.returncode == 0 and "grounding_dino" in r.stdout and "facebook/sam2.1-hiera-tiny" in r.stdout
    assert "option verifier.context" in r.stdout and "option detector.prompts_per_pass: default 16" in r.stdout


def test_seed_001_pipeline_grounding_dino_sam_and_box_only(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png", "b.png"])
    ont = tmp_path / "ont.yaml"
    ont.write_text(
        "ontology:\n  red box: box\n  cat: cat\ndetector:\n  box_threshold: 0.2\n  candidate_threshold: 0.2\n"
        "segmenter:\n  backend: sam\n"
    )
    base = [
        "label",
        str(ont),
        str(tmp_path / "in"),
        "--detector",
        "grounding_dino",
        "--detector-model",
        str(tiny_models["gdino"]),
        "-q",
        "--format",
        "coco,yolo",
    ]
    r = cli(*base, "-o", str(tmp_path / "sam"), "--segmenter-model", str(tiny_models["sam"]))
    assert r.returncode == 0, r.stderr
    coco = COCO(str(tmp_path / "sam" / "coco" / "annotations.json"))
    assert coco.dataset["annotations"] and all("segmentation" in a for a in coco.dataset["annotations"])
    r = cli(*base, "-o", str(tmp_path / "boxes"), "--segmenter", "none")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "boxes" / "coco" / "annotations.json").read_text())
    assert data["annotations"] and all("segmentation" not in a for a in data["annotations"])
    rows = [
        line.split()
        for p in (tmp_path / "boxes" / "yolo" / "labels").rglob("*.txt")
        for line in p.read_text().splitlines()
    ]
    assert rows and all(len(r) == 5 for r in rows)  # detection rows only, never mixed


def test_missing_fiftyone_is_an_install_hint_before_labeling(fake_ontology_yaml: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "in", ["a.png"])
    env = import_blocker(tmp_path, ["fiftyone"])
    r = cli("label", str(fake_ontology_yaml), str(tmp_path / "in"), "-o", str(tmp_path / "out"), env=env)
    assert r.returncode == 2, r.stderr
    assert "error: the FiftyOne export needs the 'fiftyone' package" in r.stderr
    assert "pip install 'autolabel[fiftyone]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = cli(
        "label", str(fake_ontology_yaml), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-f", "coco,yolo", env=env
    )
    assert r.returncode == 0, r.stderr


def test_export_and_finished_rerun_work_with_torch_unimportable(
    labeled_run: dict[str, Path], tmp_path: Path, fake_ontology_yaml: Path
) -> None:
    env = import_blocker(tmp_path, ["torch", "transformers"])
    r = cli("export", str(labeled_run["run"]), "-f", "coco,yolo", env=env)
    assert r.returncode == 0, r.stderr
    r = cli(
        "label",
        str(fake_ontology_yaml),
        str(labeled_run["input"]),
        "-o",
        str(labeled_run["run"]),
        "-f",
        "coco",
        "-q",
        env=env,
    )
    assert r.returncode == 0, r.stderr
