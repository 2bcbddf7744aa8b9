"""`tracker: sam2`: one streaming SAM 2 video session (transformers' `Sam2VideoModel`) per clip.

On a keyframe (where the detector ran) the live objects are first propagated to the frame, then the
frame's detections are matched to them by mask IoU (optimal assignment); the detections left over start
new objects in the same session (all of a frame's new boxes in one call: two calls on one frame break the
first object), without a reset. An object ends after `max_missed` keyframes without a matching detection,
when its mask collapses or covers nearly the whole frame, or when its object score stays negative for
`max_negative` frames, and leaves the session (`drop_objects`: compute and memory follow the live objects,
not every object a long clip ever saw); at most `max_objects` live at once.

Memory stays flat in the clip's length: after each frame the session forgets what the model can no longer
read — non-conditioning outputs older than its object-pointer window, all but the object pointer of those
older than its memory window, the high-resolution masks of stored outputs, processed frames and the
per-frame bookkeeping — which leaves the masks bit-identical (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autolabel.types import Detections


@dataclass
class Sam2Tracker:
    model: Any  # Sam2VideoModel
    processor: Any  # Sam2VideoProcessor
    device: str = "cpu"
    match_iou: float = 0.5
    max_missed: int = 3
    max_negative: int = 5
    max_objects: int = 32
    full_frame: float = 0.9
    min_area: int = 1  # pixels: a mask below this has collapsed
    prune: bool = True
    drop_ended: bool = True  # ended objects leave the session (else SAM 2 goes on computing them every frame)
    live: dict[int, int] = field(default_factory=dict)  # object id → keyframes missed
    negative: dict[int, int] = field(default_factory=dict)  # object id → frames with a negative score
    next_id: int = 1
    session: Any = None
    assigned: dict[int, int] = field(default_factory=dict)  # last keyframe: object id → its detection's index

    def __post_init__(self) -> None:
        import torch

        self.session = self.processor.init_video_session(inference_device=self.device, dtype=torch.float32)
        self.keep = max(self.model.config.max_object_pointers_in_encoder, self.model.config.num_maskmem) + 1

    def step(self, frame_idx: int, image: np.ndarray, detections: Detections | None) -> dict[int, np.ndarray]:
        """The frame's masks of the live objects, {object id: (H, W) bool}; `detections` on keyframes."""
        inputs = self.processor(images=image, device=self.device, return_tensors="pt")
        self.assigned = {}
        masks = self._run(frame_idx, inputs) if self.live else {}
        if detections is not None:
            new = self._match(masks, detections)
            room = self.max_objects - len(self.live)
            if new and room > 0:
                boxes = [detections.xyxy[i].tolist() for i in new[:room]]
                ids = list(range(self.next_id, self.next_id + len(boxes)))
                self.next_id += len(boxes)
                self.processor.add_inputs_to_inference_session(
                    inference_session=self.session,
                    frame_idx=frame_idx,
                    obj_ids=ids,
                    input_boxes=[boxes],
                    original_size=inputs.original_sizes[0],
                )
                self.live.update(dict.fromkeys(ids, 0))
                self.assigned.update(zip(ids, new[:room]))
                masks = self._run(frame_idx, inputs)
        self._end_collapsed(masks)
        if self.prune:
            self._prune(frame_idx)
        return {oid: m for oid, m in masks.items() if oid in self.live}

    def _run(self, frame_idx: int, inputs: Any) -> dict[int, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model(inference_session=self.session, frame=inputs.pixel_values[0], frame_idx=frame_idx)
        masks = self.processor.post_process_masks([out.pred_masks], original_sizes=inputs.original_sizes, binarize=True)
        scores = out.object_score_logits.reshape(-1).tolist() if out.object_score_logits is not None else []
        result = {}
        for k, oid in enumerate(out.object_ids):
            result[int(oid)] = masks[0][k, 0].numpy().astype(bool)
            if k < len(scores):
                self.negative[int(oid)] = self.negative.get(int(oid), 0) + 1 if scores[k] < 0 else 0
        return result

    def _match(self, masks: dict[int, np.ndarray], det: Detections) -> list[int]:
        """Match detections to live objects by mask IoU; returns the detections left over (new objects)."""
        from scipy.optimize import linear_sum_assignment

        from autolabel.masks import box_mask, mask_iou

        live = [oid for oid in masks if oid in self.live]
        if not live or not len(det):
            for oid in live:
                self.live[oid] += 1
            self._end([oid for oid in live if self.live[oid] >= self.max_missed])
            return list(range(len(det)))
        h, w = masks[live[0]].shape
        det_masks = [
            np.asarray(det.masks[i], dtype=bool) if det.masks is not None else box_mask(det.xyxy[i], h, w)
            for i in range(len(det))
        ]
        iou = np.array([[mask_iou(d, masks[oid]) for oid in live] for d in det_masks])
        rows, cols = linear_sum_assignment(-iou)
        matched = {(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= self.match_iou}
        hit = {live[c] for _, c in matched}
        self.assigned = {live[c]: r for r, c in matched}
        for oid in live:
            self.live[oid] = 0 if oid in hit else self.live[oid] + 1
        self._end([oid for oid in live if self.live[oid] >= self.max_missed])
        used = {r for r, _ in matched}
        return [i for i in range(len(det)) if i not in used]

    def cut(self) -> None:
        """A scene cut: every object ends and the session starts afresh (object ids go on counting)."""
        self.session.reset_inference_session()
        self.live.clear()
        self.negative.clear()

    def _end_collapsed(self, masks: dict[int, np.ndarray]) -> None:
        gone = [
            oid
            for oid, m in masks.items()
            if oid in self.live
            and (
                m.sum() < self.min_area or m.mean() >= self.full_frame or self.negative.get(oid, 0) >= self.max_negative
            )
        ]
        self._end(gone)

    def _end(self, ids: list[int]) -> None:
        for oid in ids:
            self.live.pop(oid, None)
            self.negative.pop(oid, None)
        if self.drop_ended:
            drop_objects(self.session, set(ids))

    def _prune(self, frame_idx: int) -> None:
        prune_session(self.session, frame_idx, self.model.config.num_maskmem, self.keep)


def prune_session(session: Any, frame_idx: int, num_maskmem: int, keep: int, count_frames: bool = False) -> None:
    """Forget what the model can no longer read (see the module doc): the next frame reads the memories
    (features, position encodings) of the `num_maskmem - 1` frames before it, and only the object pointers
    of older ones, up to its pointer window (`keep` frames). SAM 2's and SAM 3's video sessions alike; SAM 3
    counts its processed frames (`num_frames`), so there (`count_frames`) an old frame's pixels are replaced
    by an empty tensor instead of its entry going."""
    pointer_only = frame_idx + 2 - num_maskmem  # older frames: their pointer alone is read
    for per_obj in session.output_dict_per_obj.values():
        old = per_obj["non_cond_frame_outputs"]
        for f in [f for f in old if f < frame_idx - keep]:
            del old[f]
        for f, out in old.items():
            for key in [k for k in out if k == "high_res_masks" or (f < pointer_only and k != "object_pointer")]:
                del out[key]
        for out in per_obj["cond_frame_outputs"].values():
            out.pop("high_res_masks", None)
    for tracked in session.frames_tracked_per_obj.values():
        for f in [f for f in tracked if f < frame_idx]:
            del tracked[f]
    frames = session.processed_frames
    if frames:
        for f in [f for f in frames if f < frame_idx]:
            if count_frames:
                frames[f] = frames[f].new_empty(0)
            else:
                del frames[f]


def drop_objects(session: Any, ids: set[int]) -> None:
    """Remove objects from a transformers Sam2VideoInferenceSession: their inputs, outputs and memories go and
    the others are re-indexed (the session keys its per-object state by a dense index). SAM 2 follows each
    object on its own (its own memories; the frame's features are shared), so the others' masks do not
    change (tested bit-identical)."""
    gone = {session._obj_id_to_idx[o] for o in ids if o in session._obj_id_to_idx}
    if not gone:
        return
    keep = [idx for idx in range(session.get_obj_num()) if idx not in gone]
    kept_ids = [session._obj_idx_to_id[idx] for idx in keep]
    for name in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj"):
        per_obj = getattr(session, name)
        setattr(session, name, {new: per_obj[old] for new, old in enumerate(keep)})
    session._obj_id_to_idx.clear()
    session._obj_idx_to_id.clear()
    for new, oid in enumerate(kept_ids):
        session._obj_id_to_idx[oid] = new
        session._obj_idx_to_id[new] = oid
    session.obj_ids = kept_ids
    session.obj_with_new_inputs = [o for o in session.obj_with_new_inputs if o in kept_ids]
