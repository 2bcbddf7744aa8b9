"""What a student trains on: the run's YOLO export (refreshed first when it is missing or out of step with
the run's decisions), minus the hand-labeled images, which are held out to score it honestly.

The student's own `data.yaml` (in its training folder) lists the export's train and val images in text
files, so the export itself is never changed and the held-out images never reach the optimiser."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autolabel.errors import UsageError
from autolabel.export import ExportOptions, export_run
from autolabel.export.records import decisions_digest, stale_exports
from autolabel.export.yolo import SPLITS, yolo_image_names
from autolabel.fsutil import write_text_atomic
from autolabel.quality.groundtruth import match_images, read_coco
from autolabel.run.run import Run


@dataclass
class StudentData:
    data_yaml: Path
    classes: list[str]
    has_masks: bool
    export: Path  # the run's YOLO export the lists point into
    train: list[Path]
    val: list[Path]
    held_out: dict[str, Path] = field(default_factory=dict)  # run relpath → its exported image
    gt_path: Path | None = None
    digest: str = ""  # what the student learns from: the decisions and the held-out images

    def describe(self) -> str:
        return f"{len(self.train)} training images, {len(self.val)} validation images"


def ground_truth_path(run_dir: Path, gt: Path | None) -> Path | None:
    if gt is not None:
        return gt
    saved = run_dir / "groundtruth.json"
    return saved if saved.is_file() else None


def fresh_export(run_dir: Path, echo: Callable[[str], None]) -> None:
    """The run's YOLO export, written again when it is missing or was written with other decisions."""
    yolo = run_dir / "yolo" / "data.yaml"
    with Run.open(run_dir) as run:
        stale = [s for s in stale_exports(run) if s.format == "yolo"]
    if yolo.is_file() and not stale:
        return
    why = "it is missing" if not yolo.is_file() else f"it was written with other decisions ({stale[0].applied})"
    echo(f"exporting the run's YOLO dataset first ({why})")
    export_run(run_dir, ["yolo"], ExportOptions())


def prepare(run_dir: Path, save_dir: Path, gt: Path | None, hold_out: bool) -> StudentData:
    """What the student in `save_dir` learns from: the export's images, without the held-out hand-labeled
    ones. Nothing is written (`write` does, once the training folder may be used)."""
    yolo = (run_dir / "yolo").absolute()
    with Run.open(run_dir) as run:
        classes, has_masks = run.classes, run.meta.has_masks
        relpaths = [r for r, _, _ in run.images()]
        digest = decisions_digest(run.decisions())
    names = yolo_image_names(relpaths)
    split_of = {split: _images(yolo / "images" / split) for split in SPLITS}
    gt_path = ground_truth_path(run_dir, gt)
    hand = _hand_labeled(gt_path, relpaths) if gt_path is not None else []
    held: dict[str, Path] = {}
    for rel in hand:
        for split in SPLITS:
            img = yolo / "images" / split / names[rel]
            if img in split_of[split] and (hold_out or split != "train"):
                held[rel] = img
    train = sorted(split_of["train"] - set(held.values()))
    val = sorted((split_of["val"] | split_of["test"]) - set(held.values())) or train
    if not train:
        raise UsageError(
            f"no image left to train on in {yolo} (the hand-labeled ones are held out)",
            hint="label more images, or train on the hand-labeled ones too: --no-hold-out",
        )
    learned = hashlib.sha1((digest + "\n" + "\n".join(sorted(held))).encode()).hexdigest()[:12]
    return StudentData(save_dir / "data.yaml", classes, has_masks, yolo, train, val, held, gt_path, learned)


def write(data: StudentData) -> None:
    """The student's data.yaml (beside its train.txt and val.txt): the export's folder, the image lists."""
    folder = data.data_yaml.parent
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "train.txt", "".join(f"{p}\n" for p in data.train))
    write_text_atomic(folder / "val.txt", "".join(f"{p}\n" for p in data.val))
    lines = [
        "# the run's YOLO export without the held-out hand-labeled images (written by autolabel train)",
        f"path: {json.dumps(str(data.export))}",
        f"train: {json.dumps(str((folder / 'train.txt').absolute()))}",
        f"val: {json.dumps(str((folder / 'val.txt').absolute()))}",
        f"nc: {len(data.classes)}",
        "names:",
        *(f"  {i}: {json.dumps(n, ensure_ascii=False)}" for i, n in enumerate(data.classes)),
    ]
    write_text_atomic(data.data_yaml, "\n".join(lines) + "\n")


def _images(folder: Path) -> set[Path]:
    return {p.absolute() for p in folder.rglob("*") if p.is_file() or p.is_symlink()} if folder.is_dir() else set()


def _hand_labeled(gt_path: Path, relpaths: list[str]) -> list[str]:
    data = read_coco(gt_path)
    return sorted(match_images(data["images"], relpaths))
