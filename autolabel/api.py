"""The Python API. The CLI is a thin shell over these functions.

from autolabel import Labeler
labeler = Labeler("ontology.yaml", device="cuda")
dets = labeler.label(["a.jpg", pil_image, rgb_array])      # one Detections per image
summary = labeler.label_folder("data/images", "runs/data", formats=["coco", "yolo"])

from autolabel.api import label_folder
summary, written = label_folder("ontology.yaml", "data/images", "runs/data", formats=["coco", "yolo"])

import autolabel
result = autolabel.train("runs/data", model="yolo11n-seg.pt", epochs=50)   # result.student, result.teacher
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.config.load import load_ontology, parse_ontology
from autolabel.config.ontology import Ontology
from autolabel.errors import UsageError
from autolabel.export import ExportOptions, check_export_dependencies, export_run
from autolabel.fsutil import write_text_atomic
from autolabel.inference.models import Models
from autolabel.progress import Progress
from autolabel.run.labeling import SUMMARY_NAME, run_labeling
from autolabel.run.settings import RunSettings, RunSummary
from autolabel.types import Detections, RleMasks

if TYPE_CHECKING:
    from autolabel.student.train import TrainResult

LOCK_WAIT = 3600.0  # label's own export waits for a concurrent `export` of the run to finish


def default_output(input_path: str | Path) -> Path:
    """`runs/<folder name>-<hash of its absolute path>`: two folders of the same name (a/images,
    b/images) never share a run directory."""
    from autolabel.storage import is_uri

    if is_uri(input_path):
        uri = str(input_path).rstrip("/")
        return Path("runs") / f"{uri.rsplit('/', 1)[-1]}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"
    p = Path(input_path).resolve()
    name = p.stem if p.is_file() else p.name
    return Path("runs") / f"{name}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def as_ontology(ontology: str | Path | dict | Ontology) -> Ontology:
    if isinstance(ontology, Ontology):
        return ontology
    if isinstance(ontology, dict):
        return parse_ontology(ontology)
    return load_ontology(ontology)


def label_folder(
    ontology: str | Path | dict | Ontology,
    input_path: str | Path,
    output_dir: str | Path | None = None,
    formats: list[str] | tuple[str, ...] = ("coco", "yolo", "fiftyone"),
    settings: RunSettings | None = None,
    export: ExportOptions | None = None,
    progress: Progress | None = None,
    export_progress: Progress | None = None,
    backends: Models | None = None,
) -> tuple[RunSummary, dict[str, str]]:
    """Label (resumably) and export; returns the run summary and {format: where it went}. `backends`
    injects (detector, segmenter) objects instead of loading the ontology's models."""
    ont = as_ontology(ontology)
    fmts = list(formats)
    check_export_dependencies(fmts)
    out = Path(output_dir) if output_dir is not None else default_output(input_path)
    summary = run_labeling(ont, input_path, out, settings or RunSettings(), progress=progress, backends=backends)
    written: dict[str, str] = {}
    if not summary.interrupted:
        try:
            report = export_run(out, fmts, export, progress=export_progress, wait=LOCK_WAIT)
        except KeyboardInterrupt:
            summary.interrupted = True
        else:
            written = report.written
            summary.decisions = report.decisions
            summary.applied, summary.shadowed, summary.warnings = report.applied, report.shadowed, report.warnings
            if report.stale:
                summary.warnings.append(report.stale)
            summary.objects_per_class = report.objects_per_class
            summary.add_time("export", report.seconds)
            summary.wall_seconds += report.seconds
            write_text_atomic(out / SUMMARY_NAME, json.dumps(summary.to_json(), indent=2) + "\n")
    return summary, written


def to_rgb(image: Any) -> np.ndarray:
    """A path, a PIL image or an (H, W, 3) uint8 RGB array → (H, W, 3) uint8 RGB array."""
    from autolabel.images import _pil_to_rgb, load_image

    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UsageError(
                f"an image array must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}",
                hint="convert with np.asarray(pil_image.convert('RGB')); OpenCV's BGR needs [..., ::-1]",
            )
        return np.ascontiguousarray(image)
    if hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image (EXIF rotation is the caller's)
        return _pil_to_rgb(image)
    raise UsageError(f"cannot label a {type(image).__name__}: give a path, a PIL image or an RGB uint8 array")


@dataclass(frozen=True)
class VideoFrame:
    """One labeled frame of a clip: its index among the decoded frames, its time (s), its detections and
    their track ids (the same id is the same object across frames)."""

    index: int
    time: float
    detections: Detections
    track_ids: np.ndarray


class Labeler:
    """Models loaded once from an ontology (a YAML path, a dict of the same shape, or an `Ontology`).

    Keyword settings are those of `RunSettings` (batch_size, device, precision, ...). `backends`
    injects (detector, segmenter) objects instead of loading models."""

    def __init__(self, ontology: str | Path | dict | Ontology, backends: Models | None = None, **settings: Any) -> None:
        from autolabel.config.plan import make_plan
        from autolabel.inference.models import check_prompts, load_models, with_tiling

        self.ontology = as_ontology(ontology)
        self.settings = RunSettings(**settings)
        self.plan = make_plan(self.ontology)
        detector, segmenter = (
            backends if backends is not None else load_models(self.plan, self.settings.device, self.settings.precision)
        )
        self.detector, self.segmenter = with_tiling(detector, self.plan), segmenter
        check_prompts(self.detector, self.plan)
        if self.ontology.examples:  # example images relative to the current directory, or absolute
            from autolabel.inference.examples import give_examples, load_examples

            give_examples(self.detector, load_examples(self.ontology, None))

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names by class id (COCO category id = class id + 1)."""
        return tuple(self.ontology.classes)

    def label(self, images: Iterable[Any]) -> list[Detections]:
        """One Detections per image (the ontology's decisions applied), masks as (N, H, W) bool arrays
        shaped like the image. Images are batched as the CLI batches them (`batch_size`)."""
        from autolabel.decisions import decide
        from autolabel.inference.stages import InferenceCounts, infer_batch

        if isinstance(images, (str, Path, np.ndarray)) or hasattr(images, "mode"):
            images = [images]
        arrays = [to_rgb(im) for im in images]
        out: list[Detections] = []
        bs = self.settings.batch_size
        for start in range(0, len(arrays), bs):
            batch = arrays[start : start + bs]
            cands = infer_batch(batch, self.plan, self.detector, self.segmenter, InferenceCounts())
            for img, c in zip(batch, cands):
                det = decide(c, img.shape[1], img.shape[0], self.plan.decisions)
                det.class_names = self.classes
                if isinstance(det.masks, RleMasks):
                    det.masks = det.masks.dense()
                out.append(det)
        return out

    def label_video(self, path: str | Path, sampling: Any = None) -> Iterator[VideoFrame]:
        """Label a clip's sampled frames (the ontology's `video:` settings, or a `video.decode.Sampling`) and
        link them into tracks as `autolabel label` does (`run.tracking`: weak detections, down to
        `video.track_low`, continue tracks; each track is kept or dropped as a whole by its mean score
        against its class threshold, so labels do not flicker): yields each frame's detections (masks as
        arrays) and their track ids, once the whole clip is labeled (the per-track decision needs it)."""
        from autolabel.decisions import DecisionCounts
        from autolabel.inference.stages import InferenceCounts, infer_batch
        from autolabel.run.tracking import decide_clip
        from autolabel.types import CandidateResult
        from autolabel.video.clip import Clip, frame_relpath
        from autolabel.video.decode import Sampling, frame_rate, frames

        v = self.ontology.video
        sampling = sampling or Sampling(every=v.stride, fps=v.fps, max_frames=v.max_frames)
        name = Path(path).name
        seen: list[CandidateResult] = []
        times: list[tuple[int, float]] = []
        changes: list[float] = []
        batch: list[Any] = []

        def flush() -> None:
            cands = infer_batch([f.image for f in batch], self.plan, self.detector, self.segmenter, InferenceCounts())
            for f, c in zip(batch, cands):
                seen.append(CandidateResult(frame_relpath(name, f.index), f.image.shape[1], f.image.shape[0], c))
                times.append((f.index, f.time))
                changes.append(f.change)
            batch.clear()

        for frame in frames(path, sampling):
            batch.append(frame)
            if len(batch) == self.settings.batch_size:
                flush()
        if batch:
            flush()
        if not seen:
            return
        clip = Clip(name, "", frame_rate(path), seen[0].width, seen[0].height, tuple(times), tuple(changes))
        for res in decide_clip(seen, clip, self.plan.decisions, DecisionCounts()):
            det = res.detections
            det.class_names = self.classes
            if isinstance(det.masks, RleMasks):
                det.masks = det.masks.dense()
            assert res.frame_index is not None and res.track_ids is not None
            yield VideoFrame(res.frame_index, res.time or 0.0, det, res.track_ids)

    def label_folder(
        self,
        input_path: str | Path,
        output_dir: str | Path | None = None,
        formats: Iterable[str] = ("coco", "yolo", "fiftyone"),
        **settings: Any,
    ) -> RunSummary:
        """The same resumable run as `autolabel label` with these models; returns its summary."""
        from dataclasses import replace

        summary, _ = label_folder(
            self.ontology,
            input_path,
            output_dir,
            list(formats),
            replace(self.settings, **settings),
            backends=(self.detector, self.segmenter),
        )
        return summary


def train(run_dir: str | Path, **options: Any) -> TrainResult:
    """Train an ultralytics YOLO student on a run's labels and score it on the held-out hand labels, as
    `autolabel train` does. Keywords: the fields of `autolabel.student.train.TrainOptions` (model, epochs,
    imgsz, batch, device, name, gt, hold_out, conf, extra). Returns the weights, the student's and the
    teacher's `EvalReport` on the held-out images."""
    from autolabel.student.train import TrainOptions, train_run

    return train_run(run_dir, TrainOptions(**options), echo=lambda _m: None)
