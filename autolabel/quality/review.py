"""Review loop in FiftyOne: saved views of what most needs a human look, the App, and corrected exports.

Saved views on the run's dataset (label field `autolabel`):
- `low-confidence`: labels scoring under their class's box threshold + `margin`
- `tiny-masks`: labels covering less than `tiny_fraction` of the image
- `class-overlaps`: labels overlapping a label of another class by more than `overlap_iou`
- `no-labels`: images without any label
- `rejected-images`, `rejected-labels`: samples / labels tagged `reject` (left out of corrected exports)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.errors import UsageError
from autolabel.export import ExportContext, ExportOptions, class_box_thresholds, export_run, write_exports
from autolabel.export.fiftyone import LABEL_FIELD, default_dataset_name, import_fiftyone, was_edited
from autolabel.export.records import decisions_digest
from autolabel.fsutil import RunLock, is_within
from autolabel.run.run import Run
from autolabel.types import Detections, ImageResult

REJECT_TAG = "reject"


@dataclass(frozen=True)
class ViewSettings:
    margin: float = 0.15
    tiny_fraction: float = 0.001
    overlap_iou: float = 0.5


def prepare_dataset(
    run_dir: str | Path,
    dataset_name: str | None = None,
    refresh: bool = False,
    views: ViewSettings = ViewSettings(),
    echo: Callable[[str], Any] = print,
) -> Any:
    """Load the run's FiftyOne dataset (created from the run store when missing, rebuilt when `refresh`,
    which discards edits made in the App, and rebuilt when it was made with other decisions than the run's
    and holds no edits) and (re)create the saved views. Says which decisions it shows. Returns the dataset."""
    fo = import_fiftyone()
    name = dataset_name or default_dataset_name(run_dir)
    with Run.open(run_dir) as run:
        dec = run.decisions()
        applied, digest = run.applied().describe(), decisions_digest(dec)
    echo(f"decisions: {applied}")
    if refresh or not fo.dataset_exists(name):
        export_run(run_dir, ["fiftyone"], ExportOptions(dataset_name=name, replace_edited_dataset=refresh))
    else:
        ds = fo.load_dataset(name)
        made_with = (ds.info or {}).get("decisions")
        if made_with != digest and not was_edited(ds):
            echo(f"dataset '{name}' was made with other decisions: rebuilt with the run's ({applied})")
            export_run(run_dir, ["fiftyone"], ExportOptions(dataset_name=name))
        elif made_with != digest:
            echo(
                f"warning: dataset '{name}' holds review edits and was made with other decisions than the run's "
                f"({applied}): kept as it is; `autolabel review {run_dir} --refresh` rebuilds it (discards the edits)"
            )
    ds = fo.load_dataset(name)
    thresholds = ds.info.get("box_thresholds") or class_box_thresholds(dec)
    save_views(ds, thresholds, views)
    return ds


def save_views(ds: Any, thresholds: dict[str, float], s: ViewSettings) -> list[str]:
    from fiftyone import ViewField as F

    field = LABEL_FIELD
    views: dict[str, Any] = {}
    if thresholds:
        low = None
        for cls, t in thresholds.items():
            cond = (F("label") == cls) & (F("confidence") != None) & (F("confidence") < t + s.margin)  # noqa: E711
            low = cond if low is None else (low | cond)
        views["low-confidence"] = ds.filter_labels(field, low)
    views["tiny-masks"] = ds.filter_labels(field, F("area_fraction") < s.tiny_fraction)
    views["class-overlaps"] = ds.filter_labels(field, F("max_iou_other_class") > s.overlap_iou)
    views["no-labels"] = ds.match(F(f"{field}.detections").length() == 0)
    views["rejected-images"] = ds.match_tags(REJECT_TAG)
    views["rejected-labels"] = ds.match_labels(tags=REJECT_TAG)
    for name, view in views.items():
        ds.save_view(name, view, overwrite=True)
    return list(views)


def save_sample_view(run_dir: str | Path, dataset_name: str | None, relpaths: list[str]) -> str:
    """The run's dataset (built if missing) with a saved view `to-label` holding `relpaths`; its name."""
    fo = import_fiftyone()
    name = dataset_name or default_dataset_name(run_dir)
    if not fo.dataset_exists(name):
        export_run(run_dir, ["fiftyone"], ExportOptions(dataset_name=name))
    ds = fo.load_dataset(name)
    ds.save_view("to-label", ds.select_by("relpath", relpaths, ordered=True), overwrite=True)
    return name


def launch(ds: Any, port: int, address: str, remote: bool, echo: Any = print) -> None:
    """Serve the FiftyOne App on the dataset until Ctrl-C, then shut it down. Ctrl-C at any moment,
    also while the App is still starting, stops it cleanly."""
    fo = import_fiftyone()
    echo(f"FiftyOne App: http://{address}:{port}  (saved views: {', '.join(ds.list_saved_views())}); Ctrl-C to stop")
    session = None
    try:
        session = fo.launch_app(ds, port=port, address=address, remote=remote, auto=False)
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            session.close() if session is not None else fo.close_app()
        except Exception:
            pass
        echo("App stopped")


# ------------------------------------------------------------------------------------ corrected export


def _full_mask(det: Any, width: int, height: int) -> np.ndarray:
    """A FiftyOne detection's mask (cropped to its box, any size) back to a full-image mask."""
    import cv2

    x, y, w, h = det.bounding_box
    x0, y0 = int(round(x * width)), int(round(y * height))
    x1, y1 = int(round((x + w) * width)), int(round((y + h) * height))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(max(x1, x0 + 1), width), min(max(y1, y0 + 1), height)
    full = np.zeros((height, width), dtype=bool)
    mask = getattr(det, "mask", None)
    if mask is None:  # a box drawn in review: its rectangle is its mask
        full[y0:y1, x0:x1] = True
        return full
    m = np.asarray(mask).astype(np.uint8)
    if m.shape != (y1 - y0, x1 - x0):
        m = np.asarray(cv2.resize(m, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    full[y0:y1, x0:x1] = m.astype(bool)
    return full


def dataset_index(ds: Any) -> list[tuple[str, str, int, int]]:
    """(relpath, sample id, width, height) of every sample not tagged `reject`, sorted by relpath.
    Reads no label field, so no mask is loaded."""
    input_root = Path(ds.info.get("input_root", "/"))
    rows = []
    for sample in ds.select_fields(["relpath", "metadata"]).iter_samples():
        if REJECT_TAG in (sample.tags or []):
            continue
        rel = (
            sample["relpath"]
            if sample.has_field("relpath") and sample["relpath"]
            else Path(sample.filepath).relative_to(input_root).as_posix()
        )
        rows.append((rel, sample.id, sample.metadata.width, sample.metadata.height))
    return sorted(rows)


def dataset_classes(ds: Any) -> list[str]:
    """The run's classes, then any label name typed in review (sorted), in that order."""
    classes = list(ds.default_classes or ds.info.get("classes", []))
    extra = sorted(set(ds.distinct(f"{LABEL_FIELD}.detections.label")) - set(classes))
    return classes + extra


def results_from_dataset(ds: Any, index: list[tuple[str, str, int, int]], classes: list[str]) -> Iterator[ImageResult]:
    """One ImageResult at a time from a reviewed dataset, without rejected labels."""
    from autolabel.masks import mask_to_xyxy

    for rel, sample_id, w, h in index:
        sample = ds[sample_id]
        labels = sample[LABEL_FIELD].detections if sample[LABEL_FIELD] is not None else []
        boxes, cls_ids, confs, prompts, masks = [], [], [], [], []
        for d in labels:
            if REJECT_TAG in (d.tags or []):
                continue
            m = _full_mask(d, w, h)
            box = mask_to_xyxy(m)
            if box is None:
                continue
            boxes.append(box)
            cls_ids.append(classes.index(d.label))
            confs.append(d.confidence)
            prompts.append(d["prompt"] if d.has_field("prompt") and d["prompt"] else d.label)
            masks.append(m)
        conf = None if any(c is None for c in confs) else np.asarray(confs, dtype=np.float64)
        det = Detections(
            np.asarray(boxes).reshape(-1, 4),
            np.asarray(cls_ids, dtype=np.int64),
            conf if len(confs) else np.zeros(0),
            prompts,
            np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool),
        )
        yield ImageResult(rel, w, h, det)


def export_from_dataset(
    name: str, formats: list[str], out_dir: str | Path | None, options: ExportOptions
) -> dict[str, str]:
    """Corrected COCO / YOLO exports from a reviewed FiftyOne dataset, leaving out rejected items, into
    `out_dir` (default: the run's `corrected/`). Never into the labeled folder; only what autolabel wrote
    there before is replaced."""
    fo = import_fiftyone()
    if not fo.dataset_exists(name):
        raise UsageError(f"no FiftyOne dataset named '{name}'", hint=f"known: {', '.join(fo.list_datasets()) or '-'}")
    bad = [f for f in formats if f not in ("coco", "yolo")]
    if bad:
        raise UsageError(f"--from-fiftyone writes coco and yolo, not {', '.join(bad)}")
    ds = fo.load_dataset(name)
    out = corrected_dir(ds, out_dir)
    classes = dataset_classes(ds)
    index = dataset_index(ds)
    ctx = ExportContext(
        out_dir=out,
        classes=classes,
        images=[(r, w, h) for r, _, w, h in index],
        input_root=Path(ds.info.get("input_root", "/")),
        has_masks=True,
        options=options,
        polygon_tolerance=options.polygon_tolerance or 0.0,
    )
    with RunLock(out, what="exporting", tidy=True):
        return write_exports(ctx, formats, results_from_dataset(ds, index, classes))


def corrected_dir(ds: Any, out_dir: str | Path | None) -> Path:
    """Where a corrected export goes: `out_dir`, else the run's `corrected/`; never inside the labeled folder."""
    if out_dir is None and not ds.info.get("run_dir"):
        raise UsageError(f"dataset '{ds.name}' does not say which run it came from", hint="give --output DIR")
    out = Path(out_dir) if out_dir is not None else Path(ds.info["run_dir"]) / "corrected"
    root = ds.info.get("input_root")
    if root and is_within(out, root):
        raise UsageError(
            f"'{out}' is inside the labeled folder '{root}': autolabel never writes there",
            hint="choose an --output outside it (default: the run directory's corrected/)",
        )
    return out
