"""`autolabel train`: a YOLO student trained on a run's labels, scored on the held-out hand labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from autolabel.cli.common import EXIT_INTERRUPTED, RunDir, guard
from autolabel.cli.quality import GroundTruth

if TYPE_CHECKING:
    from autolabel.quality.evaluate import EvalReport
    from autolabel.student.train import TrainResult


def train(
    run_dir: RunDir,
    model: Annotated[
        str | None,
        typer.Option(
            help="A .pt checkpoint (path, or an ultralytics name it downloads) or a .yaml architecture to train from "
            "scratch [default: yolo11n-seg.pt, yolo11n.pt for a run without masks].",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 100,
    imgsz: Annotated[int, typer.Option(min=32, help="Training and prediction image size.")] = 640,
    batch: Annotated[int, typer.Option(help="Batch size (-1: ultralytics picks by GPU memory).")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, 0, 0,1, mps [default: ultralytics' choice].")] = None,
    name: Annotated[str, typer.Option(help="Training folder: RUN_DIR/train/NAME.")] = "student",
    gt: GroundTruth = None,
    hold_out: Annotated[
        bool,
        typer.Option(
            "--hold-out/--no-hold-out",
            help="Keep the hand-labeled images out of training, to score the student on them honestly.",
        ),
    ] = True,
    conf: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The student's confidence for P/R/F1 (mAP uses every label).")
    ] = 0.25,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other ultralytics train argument, KEY=VALUE (repeatable), e.g. lr0=0.005."),
    ] = None,
) -> None:
    """Train an ultralytics YOLO model (segment when the run has masks) on the run's YOLO export with its
    decisions, then score it on the held-out hand-labeled images next to the run's own labels. A rerun of
    the same --name resumes an interrupted training."""

    def run() -> int:
        from autolabel.student.train import TrainOptions, train_run

        opts = TrainOptions(model, epochs, imgsz, batch, device, name, gt, hold_out, conf, parse_sets(sets))
        try:
            result = train_run(run_dir, opts, echo=typer.echo)
        except KeyboardInterrupt:
            typer.echo(
                f"interrupted: rerun the same command to resume {run_dir / 'train' / name} from its last epoch",
                err=True,
            )
            return EXIT_INTERRUPTED
        typer.echo(summary(result))
        return 0

    code = guard(run)
    if code:
        raise typer.Exit(code)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set lr0=0.005 --set cos_lr=true` → {"lr0": 0.005, "cos_lr": True} (values read as YAML)."""
    import yaml

    from autolabel.errors import UsageError

    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--set '{item}': expected KEY=VALUE, e.g. lr0=0.005")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def summary(r: TrainResult) -> str:
    lines = [f"student: {r.weights}", f"training log: {r.save_dir / 'results.csv'} (plots beside it)"]
    lines += r.notes
    if r.student is None or r.teacher is None:
        return "\n".join(lines)
    n, objects = r.student.images_matched, int(r.student.overall["micro"].get("gt") or 0)
    lines.append(f"on {n} held-out hand-labeled images ({objects} objects), never trained on:")
    kind = "segm" if "segm" in r.student.metrics and "segm" in r.teacher.metrics else "bbox"
    lines.append(f"  {'':34} {kind + ' mAP':>9} {'mAP50':>6} {'P':>6} {'R':>6} {'F1':>6}")
    lines.append(_row("teacher (the run's labels)", r.teacher, kind))
    lines.append(_row(f"student (confidence >= {r.conf:g})", r.student, kind))
    return "\n".join(lines)


def _row(label: str, e: EvalReport, kind: str) -> str:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    m, micro = e.metrics.get(kind, {}), e.overall["micro"]
    return (
        f"  {label:34} {fmt(m.get('mAP')):>9} {fmt(m.get('AP50')):>6} {fmt(micro.get('precision')):>6} "
        f"{fmt(micro.get('recall')):>6} {fmt(micro.get('f1')):>6}"
    )
