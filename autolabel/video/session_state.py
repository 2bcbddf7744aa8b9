"""A `Sam2Tracker`'s state written to disk at a keyframe and read back, so a clip interrupted part-way resumes
at its last saved keyframe and ends bit-identical to an uninterrupted run (tested).

Two files, both written atomically: `<stem>.safetensors` (every tensor of the session: memories, object
pointers, inputs) and `<stem>.json` (the structure around them, the tracker's counters, the caller's own
`extra` data, and the size and SHA-256 of the tensor file it goes with). Nothing is unpickled: a file that is
missing, damaged or from another run reads as no state (the clip is tracked from its start).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autolabel.fsutil import atomic_write

SESSION_FIELDS = (
    "output_dict_per_obj",
    "frames_tracked_per_obj",
    "point_inputs_per_obj",
    "mask_inputs_per_obj",
    "obj_ids",
    "obj_with_new_inputs",
    "video_height",
    "video_width",
)


def _flatten(value: Any, tensors: dict[str, Any], names: dict[int, str]) -> Any:
    """JSON structure with tensors replaced by references into `tensors` (dict keys keep their type). One
    tensor referenced twice is saved once; views of one storage are saved as copies (safetensors keeps no
    shared storage)."""
    import torch

    if isinstance(value, torch.Tensor):
        if id(value) not in names:
            names[id(value)] = f"t{len(tensors)}"
            tensors[names[id(value)]] = value.detach().to("cpu").clone().contiguous()
        return {"tensor": names[id(value)]}
    if isinstance(value, dict):
        return {"dict": [[k, _flatten(v, tensors, names)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list": [_flatten(v, tensors, names) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot save a {type(value).__name__} of the SAM 2 session")


def _unflatten(node: dict[str, Any], tensors: dict[str, Any], device: Any) -> Any:
    if "tensor" in node:
        return tensors[node["tensor"]].to(device)
    if "dict" in node:
        return {k: _unflatten(v, tensors, device) for k, v in node["dict"]}
    if "list" in node:
        return [_unflatten(v, tensors, device) for v in node["list"]]
    return node["value"]


def save_state(stem: Path, tracker: Any, key: str, extra: dict[str, Any]) -> None:
    """Write the tracker's state (before its next frame); `key` says what it belongs to (read back only
    with the same key)."""
    from safetensors.torch import save

    tensors: dict[str, Any] = {}
    names: dict[int, str] = {}
    session = {name: _flatten(getattr(tracker.session, name), tensors, names) for name in SESSION_FIELDS}
    data = save(tensors)
    with atomic_write(stem.with_suffix(".safetensors"), "wb") as f:
        f.write(data)
    state = {
        "key": key,
        "tensors": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "session": session,
        "tracker": {"live": list(tracker.live.items()), "negative": list(tracker.negative.items())},
        "next_id": tracker.next_id,
        "extra": extra,
    }
    with atomic_write(stem.with_suffix(".json")) as f:
        f.write(json.dumps(state))


def load_state(
    stem: Path, tracker: Any, key: str, accept: Callable[[dict[str, Any]], bool] = lambda extra: True
) -> dict[str, Any] | None:
    """Restore the tracker saved under `key` if `accept(extra)`; returns its `extra` data, or None when there
    is no usable state (the tracker is left as it was)."""
    from safetensors.torch import load

    try:
        state = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        data = stem.with_suffix(".safetensors").read_bytes()
    except (OSError, ValueError):
        return None
    if state.get("key") != key or state["tensors"] != {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}:
        return None
    if not accept(state["extra"]):
        return None
    tensors = load(data)
    session = tracker.session
    for name in SESSION_FIELDS:
        setattr(session, name, _unflatten(state["session"][name], tensors, session.inference_state_device))
    session._obj_id_to_idx.clear()
    session._obj_idx_to_id.clear()
    for idx, oid in enumerate(session.obj_ids):
        session._obj_id_to_idx[oid] = idx
        session._obj_idx_to_id[idx] = oid
    tracker.live = {int(k): int(v) for k, v in state["tracker"]["live"]}
    tracker.negative = {int(k): int(v) for k, v in state["tracker"]["negative"]}
    tracker.next_id = int(state["next_id"])
    extra: dict[str, Any] = state["extra"]
    return extra


def remove_state(stem: Path) -> None:
    for suffix in (".json", ".safetensors"):
        stem.with_suffix(suffix).unlink(missing_ok=True)
