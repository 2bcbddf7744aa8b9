"""What the commands share: the one error boundary, choices as `str` Enums, and options used by more
than one command as `Annotated` aliases (typer reads the help and flags from the type)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from autolabel.errors import AutolabelError

if TYPE_CHECKING:
    from autolabel.export import ExportOptions
    from autolabel.overrides import ThresholdOverrides

EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
T = TypeVar("T")


class Media(str, Enum):
    symlink = "symlink"
    hardlink = "hardlink"
    copy = "copy"


class Multipart(str, Enum):
    merge = "merge"
    largest = "largest"


class CocoMasks(str, Enum):
    polygon = "polygon"
    rle = "rle"


class ToolMasks(str, Enum):
    rle = "rle"
    polygon = "polygon"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


RunDir = Annotated[Path, typer.Argument(help="Output directory of an `autolabel label` run.")]
Formats = Annotated[
    str,
    typer.Option(
        "--format", "-f", help="Exports, comma-separated: coco,yolo,fiftyone,labelstudio,cvat,mot (video tracks)."
    ),
]
CocoMasksOpt = Annotated[CocoMasks, typer.Option(help="COCO segmentation as polygons or compressed RLE.")]
Split = Annotated[str, typer.Option(help="YOLO train,val[,test] fractions (seeded, reproducible).")]
Seed = Annotated[int, typer.Option(help="Seed of the YOLO split.")]
MediaOpt = Annotated[Media, typer.Option(help="How YOLO images/ refer to the source images.")]
MultipartOpt = Annotated[
    Multipart, typer.Option(help="YOLO: bridge a multi-part mask into one polygon, or keep the largest part.")
]
DatasetName = Annotated[
    str | None, typer.Option(help="FiftyOne dataset name [default: autolabel-<run dir name>-<hash of its path>].")
]
ToolMasksOpt = Annotated[
    ToolMasks,
    typer.Option(help="Label Studio / CVAT masks: the tool's own RLE (brush / mask, keeps holes) or polygons."),
]
LabelStudioRoot = Annotated[
    Path | None,
    typer.Option(
        help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (a folder above the labeled one) "
        "[default: the labeled folder's parent]."
    ),
]
FiftyoneDir = Annotated[Path | None, typer.Option(help="Also write the FiftyOne dataset to this directory.")]
BoxThreshold = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Every class's box threshold [default: the run's, see `decisions:`]."),
]
ThresholdsFile = Annotated[
    Path | None,
    typer.Option(
        "--thresholds",
        help="YAML of per-class box thresholds (`classes: {name: {box_threshold: x}}`, as `autolabel tune` writes).",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
DEFAULT_FORMATS = "coco,yolo,fiftyone"


def fail(message: str, hint: str | None, code: int) -> None:
    from autolabel.cli.supervise import note_reported

    note_reported()  # a supervising parent (label --ray) need not add its own line
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)


def os_error(e: OSError) -> tuple[str, str, int]:
    """(message, hint, exit code) of a file-system error no library code turned into a message: a full disk
    (exit 1: a rerun resumes), a folder autolabel may not write (exit 2: the user's choice of path)."""
    import errno

    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the disk{where}",
            "free space and rerun the same command: finished images are kept, a file being written when the "
            "disk filled (a frame, an export's staging) is written again",
            1,
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "read-only file system" if e.errno == errno.EROFS else "permission denied"
        return (
            f"cannot write{where}: {what}",
            "choose a folder you can write (-o / --output), or fix its permissions; nothing else was changed",
            2,
        )
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"unexpected {type(e).__name__}: {first}", "set AUTOLABEL_DEBUG=1 for the traceback", 1


def guard(fn: Callable[[], T]) -> T:
    """The one error boundary: library errors → `error:`/`hint:` lines and their exit code; Ctrl-C → 130;
    anything unexpected → one `error:` line and exit 1 (AUTOLABEL_DEBUG=1 shows the traceback)."""
    try:
        return fn()
    except (typer.Exit, typer.Abort):
        raise
    except AutolabelError as e:
        if os.environ.get("AUTOLABEL_DEBUG"):
            raise
        fail(e.message, e.hint, e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume (finished images are kept)", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:  # `autolabel eval … | head`: the reader left; say nothing more (as `yes | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except OSError as e:
        if os.environ.get("AUTOLABEL_DEBUG"):
            raise
        fail(*os_error(e))
    except Exception as e:
        if os.environ.get("AUTOLABEL_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        fail(
            f"unexpected {type(e).__name__}: {first}",
            "set AUTOLABEL_DEBUG=1 for the traceback; finished images are kept (a rerun resumes)",
            1,
        )
    raise AssertionError("unreachable")  # fail() always raises


def threshold_overrides(
    box_threshold: float | None, thresholds: Path | None, run_dir: Path | None = None
) -> ThresholdOverrides | None:
    """Overrides given on the command line (None: the run's recorded ones apply). With the run, a thresholds
    file is checked against its classes too (every problem at once)."""
    from autolabel.config.thresholds import read_fusion, read_thresholds_file, tune_notes
    from autolabel.overrides import ThresholdOverrides

    if box_threshold is None and thresholds is None:
        return None
    classes = _run_classes(run_dir) if thresholds is not None and run_dir is not None else None
    per_class, off = read_thresholds_file(thresholds, classes) if thresholds else ({}, ())
    notes = {c: n for c, n in tune_notes(thresholds).items() if c in per_class} if thresholds else {}
    methods, calibration = read_fusion(thresholds) if thresholds else ({}, ())
    name = thresholds.name if thresholds else ""
    return ThresholdOverrides(box_threshold, per_class, name, off, notes, methods, calibration)


def _run_classes(run_dir: Path) -> list[str] | None:
    from autolabel.errors import UsageError
    from autolabel.run.run import Run

    try:
        with Run.open(run_dir) as run:
            return run.classes
    except UsageError:  # not a run: the command says so itself
        return None


def export_options(
    coco_masks: CocoMasks,
    split: str,
    seed: int,
    media: Media,
    multipart: Multipart,
    dataset_name: str | None,
    fiftyone_dir: Path | None,
    polygon_tolerance: float | None = None,
    tool_masks: ToolMasks = ToolMasks.rle,
    labelstudio_root: Path | None = None,
) -> ExportOptions:
    """The ExportOptions these command-line values ask for (split parsed and checked)."""
    from autolabel.export import ExportOptions, YoloOptions
    from autolabel.export.yolo import parse_split

    yolo = YoloOptions(split=parse_split(split), seed=seed, media=media.value, multipart=multipart.value)
    return ExportOptions(
        coco_masks=coco_masks.value,
        polygon_tolerance=polygon_tolerance,
        yolo=yolo,
        dataset_name=dataset_name,
        fiftyone_dir=str(fiftyone_dir) if fiftyone_dir else None,
        tool_masks=tool_masks.value,
        labelstudio_root=str(labelstudio_root) if labelstudio_root else None,
    )


def stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's stop) ends a command as cleanly as Ctrl-C (deferred to an image boundary
    where `interrupts.deferred` is in force)."""
    import signal

    from autolabel import interrupts

    if interrupts.is_deferring():
        return

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)


def warn_stale(run_dir: Path, skip: tuple[str, ...] = ()) -> None:
    """Name the run's exports written with other decisions than the run's (and how to refresh them)."""
    from autolabel.export.records import stale_message
    from autolabel.run.run import Run

    with Run.open(run_dir) as run:
        msg = stale_message(run, skip=skip)
    if msg:
        typer.echo(f"warning: {msg}", err=True)


def refresh_report(run_dir: Path) -> None:
    """A run with a report (`autolabel report`) gets it refreshed after a label or export, and its path said."""
    if not (run_dir / "report.html").is_file():
        return
    from autolabel.quality.report_html import write_report

    typer.echo(f"report: {write_report(run_dir)}")
