"""The Exporter protocol: every format is written the same way, one decided image at a time.

    exporter.open(ctx)          # set up a staging area (nothing the user sees changes yet)
    exporter.add(result)        # once per image, sorted by relative path
    where = exporter.close()    # finish and swap the new export in whole; returns where it went
    exporter.abort()            # on any failure instead of close(): the previous export stays as it was

Staging and the atomic swap live inside each exporter; `export.write_exports` drives them. Exporters never
import backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from autolabel.overrides import ThresholdOverrides
from autolabel.storage import is_uri, join
from autolabel.types import ImageResult
from autolabel.video.clip import Clip, locate

COCO_MASKS = ("polygon", "rle")
MEDIA_MODES = ("symlink", "hardlink", "copy")
MULTIPART_MODES = ("merge", "largest")
TOOL_MASKS = ("rle", "polygon")  # annotation tools: their own mask RLE (brush / CVAT mask), or polygons
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c")


def coord(v: float) -> str:
    """A pixel coordinate as the annotation tools' XML holds it (CVAT)."""
    return f"{float(v):.2f}"


def percent(v: float, size: int) -> float:
    """A pixel coordinate in percent of the image side (Label Studio)."""
    return round(float(v) * 100.0 / size, 4)


@dataclass(frozen=True)
class YoloOptions:
    split: tuple[float, ...] = (0.8, 0.2)
    seed: int = 0
    media: str = "symlink"
    multipart: str = "merge"


@dataclass(frozen=True)
class ExportOptions:
    coco_masks: str = "polygon"
    polygon_tolerance: float | None = None  # None: the run's masks.polygon_tolerance
    yolo: YoloOptions = field(default_factory=YoloOptions)
    dataset_name: str | None = None  # FiftyOne dataset; default autolabel-<run dir name>
    fiftyone_dir: str | None = None  # also write a FiftyOneDataset directory here
    replace_edited_dataset: bool = False  # replace a FiftyOne dataset that holds review edits
    box_threshold: float | None = None  # decision override: every class's box threshold
    class_thresholds: dict[str, float] | None = None  # decision override: {class name: box threshold}
    thresholds_source: str = ""  # where class_thresholds came from (shown in `decisions: …`)
    thresholds_notes: dict[str, str] | None = None  # class → why `autolabel tune` chose its threshold
    prompts_off: tuple[str, ...] = ()  # decision override: prompts whose candidates are dropped
    fusion_methods: dict[str, str] | None = None  # decision override (an ensemble): class → mean | max
    calibration: tuple[tuple[float, float], ...] = ()  # decision override (an ensemble): each detector's (a, b)
    reset_thresholds: bool = False  # drop the overrides recorded by earlier exports: the ontology's again
    tool_masks: str = "rle"  # Label Studio / CVAT regions: the tool's own mask RLE, or polygon
    labelstudio_root: str | None = None  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT; default: the input's parent

    def threshold_overrides(self, recorded: ThresholdOverrides) -> ThresholdOverrides:
        """What this export applies and records: new overrides replace the recorded ones whole; none given
        keeps them; `reset_thresholds` goes back to the ontology's."""
        if self.reset_thresholds:
            return ThresholdOverrides()
        given = ThresholdOverrides(
            self.box_threshold,
            dict(self.class_thresholds or {}),
            self.thresholds_source,
            self.prompts_off,
            dict(self.thresholds_notes or {}),
            dict(self.fusion_methods or {}),
            self.calibration,
        )
        return given if given else recorded


@dataclass(frozen=True)
class ExportContext:
    """What every exporter of one export needs to know before the first image.

    - `out_dir`: where exports go (`out_dir/coco`, `out_dir/yolo`, …): the run directory, or the
      directory of a corrected export.
    - `images`: (relpath, width, height) of every image the export will hold, sorted by relpath.
    - `input_root`: the labeled folder (images are referenced from there); `source` the same as text, an
      object-storage URI (`s3://bucket/prefix`) when the images live in a bucket.
    - `polygon_tolerance`: pixels of polygon simplification, resolved from the run and the options.
    - `dataset_name`: the FiftyOne dataset to (re)create; `info`: what it records about the run.
    - `clips`: the run's videos; their frames (images of the export) are in `frames_dir`.
    """

    out_dir: Path
    classes: list[str]
    images: list[tuple[str, int, int]]
    input_root: Path
    has_masks: bool
    options: ExportOptions
    polygon_tolerance: float
    dataset_name: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # default: str(input_root)
    clips: Mapping[str, Clip] = field(default_factory=dict)  # the run's videos by relpath
    frames_dir: Path | None = None  # where their sampled frames were written (RUN/frames)

    @property
    def remote(self) -> bool:
        """The images are in object storage (they can be downloaded, not linked)."""
        return is_uri(self.source)

    def location(self, relpath: str) -> str:
        """Where an image is: a file path, or an object's URI; a video's frame is in the run's frames."""
        return locate(relpath, self.source or str(self.input_root), self.clips, self.frames_dir)

    def video_location(self, clip: str) -> str:
        """Where a video is (its relpath under the labeled folder)."""
        return join(self.source or str(self.input_root), clip)


class ExportSkipped(Exception):
    """Raised by `open` when an exporter declines to replace what is there (a FiftyOne dataset with review
    edits); the message says why and what to do. The other formats of the export go on."""


class Exporter(Protocol):
    """One export format. `name` is its `--format` name."""

    name: ClassVar[str]

    def open(self, ctx: ExportContext) -> None:
        """Prepare a staging area; nothing the user already has changes yet."""
        ...

    def add(self, result: ImageResult) -> None:
        """Write one decided image (called in relpath order, once per image of `ctx.images`)."""
        ...

    def close(self) -> str:
        """Finish, swap the new export in whole, and return where it went (one line for the user)."""
        ...

    def abort(self) -> None:
        """Discard the staging area; the previous export (if any) stays untouched."""
        ...
