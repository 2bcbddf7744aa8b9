"""Device/precision choice and model loading helpers shared by the transformers backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autolabel.backends.hub import resolve_model, wrap_load_error
from autolabel.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_device(device: str) -> str:
    """'auto' picks cuda, then mps, then cpu. An explicit device that is not available is an error."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"unknown device '{device}'; valid: {', '.join(DEVICES)} (or cuda:N)")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"device '{device}' requested but CUDA is not available",
            hint="use --device cpu (or auto), or install a CUDA build of torch",
        )
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' requested but it is not available", hint="use --device cpu (or auto)")
    return device


def resolve_dtype(precision: str, device: str) -> Any:
    """fp16/bf16 only on GPU; 'auto' is bf16 on a CUDA GPU that supports it (Ampere and newer: the range
    of fp32, no overflow to inf), fp16 on older CUDA GPUs, fp32 elsewhere."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision in ("fp16", "bf16") and not device.startswith("cuda"):
        raise UsageError(
            f"precision {precision} needs a CUDA GPU; the device is '{device}'",
            hint="use --precision fp32 (or auto) on CPU/MPS",
        )
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def load_pretrained(ref: str, role: str, option: str, loaders: list[Callable[[str], Any]]) -> list[Any]:
    """Resolve `ref` (fast failure when unreachable) and call each loader on it, wrapping errors."""
    target, _local = resolve_model(ref, role, option)
    if target.endswith((".pt", ".pth")):
        from autolabel.errors import ModelLoadError

        raise ModelLoadError(
            f"{role} model '{ref}' is a raw PyTorch checkpoint; autolabel loads transformers model directories",
            hint="for Meta's official SAM 2 .pt files, convert once with transformers' "
            "src/transformers/models/sam2/convert_sam2_to_hf.py (--checkpoint_path FILE --model_name "
            "sam2.1_hiera_tiny --pytorch_dump_folder_path DIR) and pass DIR, or use the equivalent hub id "
            "facebook/sam2.1-hiera-tiny (also -small, -base-plus, -large)",
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the one the user watches
    try:
        return [load(target) for load in loaders]
    except UsageError:
        raise
    except Exception as e:  # transformers raises OSError/ValueError/KeyError for wrong or broken checkpoints
        raise wrap_load_error(role, ref, option, e) from e


def backend_dtype(cls: Any, dtype: Any) -> Any:
    """A backend may pin the precision its model needs (`PRECISION = "fp32"` on the class)."""
    import torch

    pinned = getattr(cls, "PRECISION", None)
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[pinned] if pinned else dtype


def check_finite(backend: str, *arrays: Any) -> None:
    """Half precision can overflow to inf/NaN; that must be a clear error, never silently empty output."""
    import numpy as np

    for a in arrays:
        if a is not None and not np.isfinite(np.asarray(a)).all():
            from autolabel.errors import NonFiniteError

            raise NonFiniteError(
                f"{backend}: the model produced non-finite values (inf/NaN) in this precision",
                hint="rerun with --precision fp32 (finished images are kept)",
            )


def sync_fn(device: str) -> Callable[[], None] | None:
    """A synchronize function so forward timings include queued GPU work."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return None


def check_model_class(model: Any, expected: str, ref: str, role: str, backend: str) -> None:
    """A checkpoint of another family (e.g. SAM v1 given to the sam2 backend) is a clear error."""
    from autolabel.errors import ModelLoadError

    got = type(model).__name__
    if got != expected:
        raise ModelLoadError(
            f"{role} model '{ref}' is a {got}, but backend '{backend}' needs a {expected}",
            hint="pick the backend that matches the checkpoint (see `autolabel backends`)",
        )


def load_processor_and_model(
    ref: str,
    role: str,
    backend: str,
    model_loader: Callable[[str], Any],
    expected_class: str | None,
    device: str,
    dtype: Any,
) -> tuple[Any, Any]:
    """AutoProcessor + model from a hub id or local directory, checked for its family, on device, in eval."""
    from transformers import AutoProcessor

    processor, model = load_pretrained(ref, role, f"--{role}-model", [AutoProcessor.from_pretrained, model_loader])
    if expected_class is not None:
        check_model_class(model, expected_class, ref, role, backend)
    return processor, model.to(device=device, dtype=dtype).eval()


def processor_device(device: str) -> dict[str, Any]:
    """Image-processor kwargs that run resize/normalise on the GPU (the uint8 image is uploaded once);
    none on CPU, where the processors' own CPU path is used."""
    return {"device": device} if device.startswith("cuda") else {}


def load_backend_model(cls: Any, cfg: Any, role: str, auto_class: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """`load_processor_and_model` for a backend class naming its BACKEND, MODEL_CLASS and DEFAULT_MODEL;
    `auto_class` is the transformers class whose `from_pretrained` loads the model."""
    import transformers

    loader = getattr(transformers, auto_class).from_pretrained
    ref = cfg.model or cls.DEFAULT_MODEL
    return load_processor_and_model(ref, role, cls.BACKEND, loader, cls.MODEL_CLASS, device, dtype)


def check_token_limit(backend: str, tokenizer: Any, prompts: Sequence[str], limit: int) -> None:
    """A prompt longer than the text encoder takes would be cut silently: a UsageError naming it instead."""
    from autolabel.errors import UsageError

    for p in prompts:
        n = len(tokenizer(p)["input_ids"])
        if n > limit:
            raise UsageError(
                f"{backend}: prompt '{p}' is {n} tokens; the text encoder takes at most {limit}",
                hint="shorten the prompt",
            )
