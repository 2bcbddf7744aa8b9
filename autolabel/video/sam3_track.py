"""`tracker: sam3`: SAM 3's own video model (transformers' `Sam3VideoModel`) follows the ontology's prompts
through a clip in one streaming session: its detector runs on every frame and starts objects that enter
mid-clip, its SAM 2-style tracker carries each object on. Memory is pruned after every frame as the SAM 2
tracker's is (`sam2_track.prune_session`), so it stays flat in the clip's length. A scene cut starts a
new session (object ids go on counting)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autolabel.types import normalize_prompt


@dataclass
class Sam3Frame:
    """One frame's objects: id → (H, W) bool mask, score, index of its prompt in the run's prompt list."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    prompts: dict[int, int] = field(default_factory=dict)


@dataclass
class Sam3Tracker:
    model: Any  # Sam3VideoModel
    processor: Any  # Sam3VideoProcessor
    prompts: list[str]  # the run's prompts (ontology prompts, then negatives)
    device: str = "cpu"
    max_objects: int = 32
    prune: bool = True
    session: Any = None
    base: int = 0  # object ids of earlier sessions (before a scene cut) come first

    def __post_init__(self) -> None:
        self.model.max_num_objects = self.max_objects
        cfg = self.model.config.tracker_config
        self.num_maskmem = int(cfg.num_maskmem)
        self.keep = max(int(cfg.max_object_pointers_in_encoder), self.num_maskmem) + 1
        self.index = {normalize_prompt(p): i for i, p in enumerate(self.prompts)}  # SAM 3's prompt text → ours
        self._start()

    def _start(self) -> None:
        import torch

        self.session = self.processor.init_video_session(inference_device=self.device, dtype=torch.float32)
        self.processor.add_text_prompt(self.session, list(self.prompts))

    def step(self, frame_idx: int, image: np.ndarray) -> Sam3Frame:
        """The frame's objects (ids unique in the clip)."""
        inputs = self.processor(images=image, device=self.device, return_tensors="pt")
        out = self.model(inference_session=self.session, frame=inputs.pixel_values[0], frame_idx=frame_idx)
        post = self.processor.postprocess_outputs(self.session, out, original_sizes=inputs.original_sizes)
        frame = Sam3Frame()
        for k, oid in enumerate(post["object_ids"].tolist()):
            text = str(self.session.prompts[self.session.obj_id_to_prompt_id[oid]])
            frame.masks[self.base + oid] = post["masks"][k].cpu().numpy().astype(bool)
            frame.scores[self.base + oid] = float(post["scores"][k])
            frame.prompts[self.base + oid] = self.index[normalize_prompt(text)]
        if self.prune:
            from autolabel.video.sam2_track import prune_session

            prune_session(self.session, frame_idx, self.num_maskmem, self.keep, count_frames=True)
        return frame

    def cut(self) -> None:
        """A scene cut: every object ends; a new session, whose ids follow the old ones."""
        self.base += int(self.session.max_obj_id) + 1
        self._start()
