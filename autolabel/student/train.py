"""`autolabel train RUN`: an ultralytics YOLO student trained on the run's labels, in RUN/train/NAME/
(ultralytics' own layout: weights/, results.csv, plots), then scored on the held-out hand labels next to
the run's own labels.

A training folder is autolabel's when it holds `autolabel_train.json` (what it learns from and whether it
finished). A rerun of the same name resumes from `weights/last.pt` (ultralytics' `resume`); a finished one,
or one that learned from other labels, is refused: a name never mixes two trainings.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.errors import UsageError
from autolabel.fsutil import write_text_atomic
from autolabel.quality.evaluate import EvalReport
from autolabel.student.data import StudentData, fresh_export, prepare, write
from autolabel.student.scores import score_student

MARKER = "autolabel_train.json"
OWN_OPTIONS = {"data", "model", "project", "name", "exist_ok", "resume", "epochs", "imgsz", "batch", "device"}


@dataclass(frozen=True)
class TrainOptions:
    model: str | None = None  # a .pt checkpoint or a .yaml architecture [default: yolo11n(-seg).pt]
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    name: str = "student"
    gt: Path | None = None  # hand labels [default: RUN/groundtruth.json]
    hold_out: bool = True  # never train on the hand-labeled images
    conf: float = 0.25  # the student's operating point for P/R/F1
    extra: dict[str, Any] = field(default_factory=dict)  # any other ultralytics train argument


@dataclass
class TrainResult:
    save_dir: Path
    weights: Path
    resumed: bool
    data: StudentData
    student: EvalReport | None = None
    teacher: EvalReport | None = None
    notes: list[str] = field(default_factory=list)
    conf: float = 0.25  # the student's operating point


def train_run(run_dir: str | Path, opts: TrainOptions, echo: Callable[[str], None] = print) -> TrainResult:
    import importlib.util

    from autolabel.errors import MissingDependencyError

    if importlib.util.find_spec("ultralytics") is None:
        raise MissingDependencyError("autolabel train needs ultralytics", hint="pip install 'autolabel[train]'")
    run_dir = Path(run_dir)
    if not opts.name or "/" in opts.name or opts.name in (".", ".."):
        raise UsageError(f"--name '{opts.name}': a plain folder name, e.g. yolo11n-e50")
    bad = sorted(set(opts.extra) & OWN_OPTIONS)
    if bad:
        raise UsageError(f"--set {', '.join(bad)}: use the option of its own (--model, --epochs, --imgsz, …)")
    save_dir = (run_dir / "train" / opts.name).absolute()
    marker = _read_marker(save_dir)
    if marker.get("finished"):
        raise UsageError(
            f"'{save_dir}' is a finished training",
            hint="train again under another --name; its weights are in weights/best.pt",
        )
    fresh_export(run_dir, echo)
    data = prepare(run_dir, save_dir, opts.gt, opts.hold_out)
    if marker and marker.get("learns_from") != data.digest:  # before anything in the folder is touched
        raise UsageError(
            f"'{save_dir}' was trained on other labels (the run's decisions or hand labels changed since)",
            hint="train under another --name (nothing was mixed)",
        )
    write(data)
    last = save_dir / "weights" / "last.pt"
    resumed = bool(marker) and last.is_file() and _resumable(save_dir, last, echo)
    if not resumed:
        model = resolve_model(opts.model, data.has_masks)
        write_text_atomic(save_dir / MARKER, json.dumps({"learns_from": data.digest, "model": model}) + "\n")
    echo(f"training data: {data.describe()}; " + _held_line(data))
    if marker and not resumed:
        echo(f"starting {save_dir} over: the interrupted training had not finished an epoch")
    _fit(data, opts, save_dir, last if resumed else None, echo)
    marker = _read_marker(save_dir)
    write_text_atomic(save_dir / MARKER, json.dumps({**marker, "finished": True}) + "\n")
    best = save_dir / "weights" / "best.pt"
    weights = best if best.is_file() else last
    result = TrainResult(save_dir, weights, resumed, data, conf=opts.conf)
    if data.held_out and data.gt_path is not None:
        result.student, result.teacher = score_student(run_dir, data, weights, opts)
        write_text_atomic(save_dir / "student_eval.json", json.dumps(_eval_json(result), indent=2) + "\n")
    elif data.gt_path is not None:
        result.notes.append(
            "WARNING: every hand-labeled image is in the student's training images: it is not scored "
            "(its scores would be on what it learned); use --hold-out"
        )
    else:
        result.notes.append("no hand labels: the student is not scored (`autolabel import RUN FILE`, or --gt)")
    return result


def _resumable(save_dir: Path, last: Path, echo: Callable[[str], None]) -> bool:
    """Whether `last` can be resumed from; the training log is cut back to the epochs it holds (a kill between
    ultralytics' log line and its checkpoint would otherwise log an epoch twice). A checkpoint torn by a kill
    while it was written is set aside, and training starts over."""
    import torch

    try:
        epoch = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    except Exception as e:  # any unreadable checkpoint: torn, truncated, not a dict
        aside = last.with_name("last.damaged.pt")
        last.replace(aside)
        echo(f"{last} cannot be read ({type(e).__name__}: killed while it was written?): set aside as {aside.name}")
        return False
    log = save_dir / "results.csv"
    if epoch >= 0 and log.is_file():
        lines = log.read_text().splitlines()
        kept = [lines[0]] + [
            x for x in lines[1:] if x.split(",")[0].strip().isdigit() and int(x.split(",")[0]) <= epoch + 1
        ]
        if len(kept) < len(lines):
            write_text_atomic(log, "\n".join(kept) + "\n")
    return True


def _held_line(data: StudentData) -> str:
    if not data.held_out:
        return "no hand-labeled image held out"
    return f"{len(data.held_out)} hand-labeled images held out to score it ({data.gt_path})"


def _read_marker(save_dir: Path) -> dict[str, Any]:
    if not save_dir.exists():
        return {}
    path = save_dir / MARKER
    if not path.is_file():
        if any(save_dir.iterdir()):
            raise UsageError(f"'{save_dir}' exists and is not an autolabel training: not touching it")
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"'{path}' is damaged", hint="train under another --name")
    return data


def resolve_model(model: str | None, masks: bool) -> str:
    """The checkpoint or architecture to train; a model ultralytics would download stops here, offline."""
    name = model or ("yolo11n-seg.pt" if masks else "yolo11n.pt")
    p = Path(name).expanduser()
    if p.suffix in (".yaml", ".yml"):
        return name
    if p.suffix != ".pt":
        raise UsageError(f"--model '{name}': a .pt checkpoint or a .yaml architecture (e.g. yolo11n-seg.yaml)")
    if p.is_file():
        return str(p.absolute())
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    cached = Path(SETTINGS["weights_dir"]) / p.name
    if p.parent == Path(".") and cached.is_file():
        return str(cached)
    if p.parent != Path(".") or p.name not in GITHUB_ASSETS_NAMES:
        raise UsageError(f"--model '{name}': no such file", hint="a .pt checkpoint path, or an ultralytics model name")
    if not _online():
        arch = p.stem + ".yaml"
        raise UsageError(
            f"--model {name}: ultralytics would download it from GitHub, and this machine is offline",
            hint=f"point at a local copy (--model /path/to/{name}), or train from the architecture with random "
            f"weights (--model {arch})",
        )
    return name


def _online(host: str = "github.com", timeout: float = 3.0) -> bool:
    """Whether ultralytics could download (YOLO_OFFLINE=1, ultralytics' own switch, says it cannot)."""
    import os

    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _fit(data: StudentData, opts: TrainOptions, save_dir: Path, last: Path | None, echo: Callable[[str], None]) -> None:
    """ultralytics' training (resumed from `last` when given)."""
    from ultralytics import YOLO

    if last is not None:
        echo(f"resuming {save_dir} from {last} (ultralytics resume: the checkpoint's epochs and settings)")
        yolo = YOLO(str(last))
        _train(yolo, resume=True, data=str(data.data_yaml))
        return
    model = json.loads((save_dir / MARKER).read_text())["model"]
    try:
        yolo = YOLO(model)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as e:
        raise UsageError(f"--model '{model}' cannot be loaded by ultralytics: {str(e)[:300]}") from None
    if yolo.task not in ("segment", "detect"):
        raise UsageError(f"--model '{model}' is a {yolo.task} model: train a segment or detect model")
    if yolo.task == "segment" and not data.has_masks:
        raise UsageError(f"--model '{model}' segments, and the run has boxes only: use a detect model (yolo11n.pt)")
    args = {"epochs": opts.epochs, "imgsz": opts.imgsz, "batch": opts.batch, **opts.extra}
    if opts.device is not None:
        args["device"] = opts.device
    _train(yolo, data=str(data.data_yaml), project=str(save_dir.parent), name=save_dir.name, exist_ok=True, **args)


def _train(yolo: Any, **args: Any) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*get_trial_id.*")  # ultralytics' Ray Tune callback, idle
        try:
            yolo.train(**args)
        except SyntaxError as e:  # ultralytics' message for an unknown argument
            raise UsageError(f"--set: {_first_line(e)}") from None
        except TypeError as e:
            if "Valid '" not in str(e):  # ultralytics' message for a value of the wrong type
                raise
            raise UsageError(f"--set: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return next((line for line in text.splitlines() if line.strip()), text)[:300]


def _eval_json(r: TrainResult) -> dict[str, Any]:
    return {
        "weights": str(r.weights),
        "held_out": sorted(r.data.held_out),
        "ground_truth": str(r.data.gt_path),
        "student": r.student.to_json() if r.student else None,
        "teacher": r.teacher.to_json() if r.teacher else None,
    }
