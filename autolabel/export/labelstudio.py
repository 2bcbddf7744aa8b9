"""Label Studio pre-annotations (`-f labelstudio`): `labelstudio/tasks.json` (one task per image, the run's
labels as a prediction), `labelstudio/config.xml` (the labeling config for the run's classes) and
`labelstudio/README.md` (how to set up the project), each written atomically.

Traps handled: brush masks in Label Studio's own RLE (not COCO's), polygon points in percent of the image,
`original_width`/`original_height` on every result, a `score` per result and per task, `model_version`
naming the run and its models, image references for its local-files storage (a path relative to
LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, whose storage must be a subfolder of that root).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from autolabel.errors import UsageError
from autolabel.export.base import TOOL_MASKS, ExportContext, percent
from autolabel.export.labelstudio_video import ClipRegions, label_tags, video_config
from autolabel.fsutil import StreamedFile, head_lines, is_within, write_text_atomic
from autolabel.masks import box_mask, external_polygons, mask_to_xyxy
from autolabel.tool_rle import ls_encode
from autolabel.types import ImageResult

MARK = "# Label Studio import written by autolabel."  # the first line of labelstudio/README.md
IMAGE, BRUSH, POLYGON = "image", "mask", "polygon"  # the tag names of the labeling config


def label_config(classes: list[str]) -> str:
    """The labeling config: the image, brush labels and polygon labels for every class."""
    labels = label_tags(classes)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="$image" zoom="true" zoomControl="true"/>\n'
        f'  <BrushLabels name="{BRUSH}" toName="{IMAGE}">\n{labels}  </BrushLabels>\n'
        f'  <PolygonLabels name="{POLYGON}" toName="{IMAGE}" strokeWidth="2" pointSize="small">\n'
        f"{labels}  </PolygonLabels>\n"
        "</View>\n"
    )


def document_root(ctx: ExportContext) -> Path | None:
    """LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: the option, else the labeled folder's parent (the storage
    path, the labeled folder, must be a subfolder of the root); None for images in a bucket (referenced by
    their URIs: the bucket is attached as Label Studio source storage)."""
    if ctx.remote:
        return None
    root = Path(ctx.options.labelstudio_root or ctx.input_root.resolve().parent).resolve()
    if not is_within(ctx.input_root.resolve(), root) or ctx.input_root.resolve() == root:
        raise UsageError(
            f"the labeled folder '{ctx.input_root}' is not inside --labelstudio-root '{root}'",
            hint="Label Studio serves local files only from a subfolder of its document root: give a folder "
            "above the labeled folder",
        )
    return root


def image_ref(ctx: ExportContext, root: Path | None, relpath: str, video: bool = False) -> str:
    """What Label Studio loads the image (or, `video`, the clip) from: an object's URI, else its local-files
    path."""
    where_text = ctx.video_location(relpath) if video else ctx.location(relpath)
    if root is None:
        return where_text
    where = Path(where_text).resolve()
    if not is_within(where, root):  # a video's frame, in the run directory
        raise UsageError(
            f"'{where}' is not inside --labelstudio-root '{root}'",
            hint="the frames of videos are in the run directory (RUN/frames): give a --labelstudio-root above "
            "both the labeled folder and the run directory",
        )
    return "/data/local-files/?d=" + quote(where.relative_to(root).as_posix(), safe="/")


def label_results(result: ImageResult, classes: list[str], masks: str, tolerance: float) -> list[dict[str, Any]]:
    """Label Studio results (regions) for one image's labels."""
    det, w, h = result.detections, result.width, result.height
    out: list[dict[str, Any]] = []
    for i in range(len(det)):
        label = classes[int(det.class_id[i])]
        common: dict[str, Any] = {"to_name": IMAGE, "original_width": w, "original_height": h, "image_rotation": 0}
        if det.confidence is not None:
            common["score"] = round(float(det.confidence[i]), 4)
        # a box-only run: a rectangle mask keeps one format for every region
        mask = det.masks[i] if det.masks is not None else box_mask(det.xyxy[i], h, w)
        if mask_to_xyxy(mask) is None:
            continue
        if masks == "rle":
            value: dict[str, Any] = {"format": "rle", "rle": ls_encode(mask), "brushlabels": [label]}
            out.append({"id": f"r{i}", "type": "brushlabels", "from_name": BRUSH, **common, "value": value})
            continue
        for k, poly in enumerate(external_polygons(mask, tolerance)):  # one region per part: LS has no
            points = [[percent(x, w), percent(y, h)] for x, y in poly]  # multi-part polygons
            value = {"points": points, "closed": True, "polygonlabels": [label]}
            rid = f"r{i}" + (f"p{k}" if k else "")
            out.append({"id": rid, "type": "polygonlabels", "from_name": POLYGON, **common, "value": value})
    return out


def readme(ctx: ExportContext, root: Path | None, clips: int = 0) -> str:
    version = ctx.info.get("model_version", "autolabel")
    if root is None:
        serve = f"""1. Start Label Studio as usual.
2. Create a project; Settings → Labeling Interface → Code: paste config.xml.
3. Settings → Cloud Storage → Add Source Storage → the bucket of {ctx.source} (S3, GCS or Azure), with
   presigned URLs (do not sync it: the tasks below already reference the objects by URI)."""
    else:
        serve = f"""1. Start Label Studio with local files served from this root:
       LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\
       LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} label-studio start
2. Create a project; Settings → Labeling Interface → Code: paste config.xml.
3. Settings → Cloud Storage → Add Source Storage → Local files, absolute path {ctx.input_root.resolve()}
   (do not sync it: the tasks below already reference the images)."""
    return f"""{MARK}
Import these pre-annotations into Label Studio:

{serve}
4. Import tasks.json (Data Manager → Import). Labels appear as predictions ("{version}").
   Or all in one step: autolabel push labelstudio RUN --url URL --token TOKEN
5. Correct, then export JSON and: autolabel import RUN export.json
""" + (VIDEO_NOTE if clips else "")


VIDEO_NOTE = """
Videos: video_tasks.json holds one task per clip, each tracked object a video rectangle (its id t<track id>).
Make a second project with video_config.xml as its labeling interface, attach the same local storage and
import video_tasks.json. Fix boxes and track switches there, export JSON and `autolabel import RUN` it: the
track ids come back into COCO (attributes.track_id) and MOT.
"""


class LabelStudioExporter:
    """`-f labelstudio`: tasks with predictions, the labeling config and set-up notes in `labelstudio/`."""

    name = "labelstudio"

    def __init__(self) -> None:
        self.file: StreamedFile | None = None
        self.video: StreamedFile | None = None
        self.clip: ClipRegions | None = None
        self.n = self.clips = 0

    def open(self, ctx: ExportContext) -> None:
        masks = ctx.options.tool_masks
        if masks not in TOOL_MASKS:
            raise UsageError(f"--tool-masks '{masks}': valid: {', '.join(TOOL_MASKS)}")
        self.dir = ctx.out_dir / "labelstudio"
        note = self.dir / "README.md"
        if self.dir.exists() and any(self.dir.iterdir()) and [x.strip() for x in head_lines(note)] != [MARK]:
            raise UsageError(
                f"'{self.dir}' exists and was not written by autolabel: not replacing it",
                hint="move it away, or export to another directory (-o)",
            )
        self.ctx, self.masks, self.root = ctx, masks, document_root(ctx)
        self.model_version = str(ctx.info.get("model_version", "autolabel"))
        self.file = StreamedFile(self.dir / "tasks.json")
        self.file.write("[")

    def add(self, result: ImageResult) -> None:
        assert self.file is not None, "open() first"
        if result.clip is not None:  # a video's frame: its clip becomes one video task
            if self.clip is None or self.clip.clip.relpath != result.clip:
                self._finish_clip()
                self.clip = ClipRegions(self.ctx.clips[result.clip], self.ctx.classes)
            self.clip.add(result)
            return
        regions = label_results(result, self.ctx.classes, self.masks, self.ctx.polygon_tolerance)
        prediction: dict[str, Any] = {"model_version": self.model_version, "result": regions}
        scores = [r["score"] for r in regions if "score" in r]
        if scores:
            prediction["score"] = min(scores)  # the least certain label: sort ascending to review it first
        task = {
            "data": {IMAGE: image_ref(self.ctx, self.root, result.relpath), "relpath": result.relpath},
            "predictions": [prediction],
        }
        self.file.write(("," if self.n else "") + "\n" + json.dumps(task, ensure_ascii=False))
        self.n += 1

    def _finish_clip(self) -> None:
        if self.clip is None:
            return
        if self.video is None:
            self.video = StreamedFile(self.dir / "video_tasks.json")
            self.video.write("[")
        ref = image_ref(self.ctx, self.root, self.clip.clip.relpath, video=True)
        self.video.write(("," if self.clips else "") + "\n" + self.clip.task(ref, self.model_version))
        self.clips += 1
        self.clip = None

    def close(self) -> str:
        assert self.file is not None, "open() first"
        self._finish_clip()
        self.file.write("\n]\n")
        self.file.commit()
        if self.video is not None:
            self.video.write("\n]\n")
            self.video.commit()
            write_text_atomic(self.dir / "video_config.xml", video_config(self.ctx.classes))
        write_text_atomic(self.dir / "config.xml", label_config(self.ctx.classes))
        write_text_atomic(self.dir / "README.md", readme(self.ctx, self.root, self.clips))
        videos = f"; {self.clips} video tasks {self.dir / 'video_tasks.json'}" if self.clips else ""
        return f"{self.dir / 'tasks.json'} ({self.n} tasks; labeling config {self.dir / 'config.xml'}{videos})"

    def abort(self) -> None:
        if self.file is not None:
            self.file.discard()
        if self.video is not None:
            self.video.discard()
