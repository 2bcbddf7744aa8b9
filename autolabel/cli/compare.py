"""`autolabel compare`: which labeling setup matches the hand labels best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autolabel.cli.common import guard
from autolabel.cli.quality import GroundTruth


def compare(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories (the same images labeled with other detectors, prompts or thresholds) and COCO "
            "prediction files (a student's, another tool's).",
            show_default=False,
        ),
    ],
    gt: GroundTruth = None,
    score_threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Prediction files: P/R/F1 of their labels scoring this or more (mAP uses all)."
        ),
    ] = 0.25,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
) -> None:
    """Score several runs (and prediction files) on the same hand-labeled images: AP, P/R/F1 at each one's
    decisions and after `tune` (cross-validated), seconds per image, the largest error source per class,
    and which to use with how sure that is. Ground truth: --gt, else the first run's groundtruth.json."""

    def run() -> None:
        import json

        from autolabel.fsutil import write_text_atomic
        from autolabel.quality.compare import compare as compare_sources
        from autolabel.quality.compare import format_comparison

        result = compare_sources(sources, gt, score_threshold)
        typer.echo(format_comparison(result))
        if json_out is not None:
            write_text_atomic(json_out, json.dumps(result.to_json(), indent=2) + "\n")
            typer.echo(f"report: {json_out}")

    guard(run)
