"""The Python API. The CLI is a thin shell over these functions.

    from autolabel.api import label_folder
    summary = label_folder("ontology.yaml", "data/images", "runs/data", formats=["coco", "yolo"])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .engine import SUMMARY_NAME, run_labeling
from .exporters import ExportOptions, check_export_dependencies, export_run
from .fsutil import write_text_atomic
from .ontology import Ontology, load_ontology, parse_ontology
from .runinfo import Progress, RunSettings, RunSummary


def default_output(input_path: str | Path) -> Path:
    """`runs/<folder name>-<hash of its absolute path>`: two folders of the same name (a/images,
    b/images) never share a run directory."""
    p = Path(input_path).resolve()
    name = p.stem if p.is_file() else p.name
    return Path("runs") / f"{name}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"


def as_ontology(ontology: str | Path | dict | Ontology) -> Ontology:
    if isinstance(ontology, Ontology):
        return ontology
    if isinstance(ontology, dict):
        return parse_ontology(ontology)
    return load_ontology(ontology)


def label_folder(ontology: str | Path | dict | Ontology, input_path: str | Path, output_dir: str | Path | None = None,
                 formats: list[str] | tuple[str, ...] = ("coco", "yolo", "fiftyone"),
                 settings: RunSettings = RunSettings(), export: ExportOptions = ExportOptions(),
                 progress: Progress | None = None, export_progress: Progress | None = None,
                 backends: tuple[Any, Any] | None = None) -> tuple[RunSummary, dict[str, str]]:
    """Label (resumably) and export; returns the run summary and {format: where it went}."""
    ont = as_ontology(ontology)
    fmts = list(formats)
    check_export_dependencies(fmts)
    out = Path(output_dir) if output_dir is not None else default_output(input_path)
    summary = run_labeling(ont, input_path, out, settings, progress=progress, backends=backends)
    written: dict[str, str] = {}
    if not summary.interrupted:
        try:
            report = export_run(out, fmts, export, progress=export_progress)
        except KeyboardInterrupt:
            summary.interrupted = True
        else:
            written = report.written
            summary.decisions = report.decisions
            summary.objects_per_class = report.objects_per_class
            summary.add_time("export", report.seconds)
            summary.wall_seconds += report.seconds
            write_text_atomic(out / SUMMARY_NAME, json.dumps(summary.to_json(), indent=2) + "\n")
    return summary, written


def settings_with(settings: RunSettings, **changes: Any) -> RunSettings:
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})
