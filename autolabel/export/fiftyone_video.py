"""The FiftyOne export of a run with videos also builds `<dataset>-video`: one video sample per clip (the
video file itself), each sampled frame's `autolabel` Detections at its frame number (decoded index + 1),
every detection's `index` its track id (the same object across the clip, what the App colours by) and
`keyframe=True` (what FiftyOne's CVAT integration uploads as a track's keyframes). Built aside and renamed
over the previous one when complete, as the image dataset is; frames stay image samples there too (review).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

from autolabel.export.base import ExportContext
from autolabel.export.fiftyone_labels import LABEL_FIELD, STAGING, recover_dataset, swap_dataset
from autolabel.types import ImageResult

VIDEO_SUFFIX = "-video"


class VideoDataset:
    def __init__(self, fo: Any, ctx: ExportContext) -> None:
        self.fo, self.ctx, self.name = fo, ctx, ctx.dataset_name + VIDEO_SUFFIX
        recover_dataset(fo, self.name)
        self.ds = fo.Dataset(f"{self.name}{STAGING}-{os.getpid()}", persistent=True)
        self.ds.default_classes = list(ctx.classes)
        self.ds.info = {"source": "autolabel", "classes": list(ctx.classes), **ctx.info}
        self.sample: Any = None
        self.clip: str | None = None

    def add(self, result: ImageResult, labels: Any) -> None:
        """A frame of a clip, with its `labels` (FiftyOne Detections whose `index` is the track id)."""
        if result.clip is None or result.frame_index is None:
            return
        if result.clip != self.clip:
            self._finish()
            self.clip, self.sample = result.clip, self._new_sample(result.clip)
        for d in labels.detections:
            d["keyframe"] = True
        self.sample.frames[result.frame_index + 1] = self.fo.Frame(**{LABEL_FIELD: labels})

    def _new_sample(self, clip: str) -> Any:
        c, path = self.ctx.clips[clip], Path(self.ctx.video_location(clip)).resolve()
        meta = self.fo.VideoMetadata(
            frame_width=c.width,
            frame_height=c.height,
            frame_rate=c.fps or None,
            size_bytes=path.stat().st_size if path.exists() else None,
            mime_type=mimetypes.guess_type(path.name)[0],
        )
        return self.fo.Sample(filepath=str(path), clip=clip, metadata=meta)

    def _finish(self) -> None:
        if self.sample is not None:
            self.ds.add_sample(self.sample)
            self.sample = None

    def close(self) -> str:
        self._finish()
        self.ds.save()
        swap_dataset(self.fo, self.ds, self.name)
        return self.name

    def abort(self) -> None:
        if self.ds is not None and self.ds.name != self.name:
            self.fo.delete_dataset(self.ds.name)
