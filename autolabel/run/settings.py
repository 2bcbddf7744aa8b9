"""Run settings, the run summary and progress callbacks (shared by the executors and the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autolabel.config.plan import RunPlan
from autolabel.decisions import DecisionCounts
from autolabel.images import DEFAULT_MAX_IMAGE_PIXELS
from autolabel.inference.stages import InferenceCounts
from autolabel.progress import Progress
from autolabel.types import ImageInfo

MAX_SAME_FAILURES = 3  # consecutive batches failing with the same model error stop the run


@dataclass(frozen=True)
class RayOptions:
    """`--ray`: run inference as a Ray Data pipeline."""

    address: str | None = None  # None: RAY_ADDRESS, else a local Ray with every GPU of the machine
    workers: int | None = None  # model replicas; default: the GPUs Ray sees ÷ gpus_per_worker (1 without GPUs)
    gpus_per_worker: float = 1.0
    cpus_per_worker: float | None = None  # default 1 with GPUs, 0.5 without (2-CPU machines must not deadlock)
    batches_per_replica: int = 3  # in one replica at once, one per stage; 1: the stages one after the other
    resources: tuple[tuple[str, float], ...] = ()  # custom resources per replica: nodes that may run one


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    overwrite: bool = False
    relist: bool = False  # object storage: list the prefix again instead of using the run's manifest
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    decode_workers: int = 2
    prefetch_bytes: int = 512 * 2**20  # decoded images held ahead of the model (at least one batch)
    limit: int | None = None  # label only the first N images (sorted by relative path)
    images: tuple[str, ...] | None = None  # label only these relative paths (`--images FILE`)
    max_same_failures: int = MAX_SAME_FAILURES
    ray: RayOptions | None = None  # None: the one-process executor


@dataclass
class RunSummary:
    images_total: int = 0
    already_done: int = 0
    processed: int = 0
    changed: int = 0  # done images whose file changed since: relabeled
    skipped: list[tuple[str, str]] = field(default_factory=list)
    objects_per_class: dict[str, int] = field(default_factory=dict)
    inference: InferenceCounts = field(default_factory=InferenceCounts)
    decisions: DecisionCounts = field(default_factory=DecisionCounts)
    applied: str = "ontology"  # which decisions the export applied (`ontology + tuned.yaml (…)`)
    shadowed: list[str] = field(default_factory=list)  # ontology class thresholds an override changes
    warnings: list[str] = field(default_factory=list)  # an empty or suspicious dataset, with the fix
    stage_seconds: dict[str, float] = field(default_factory=dict)
    detector_passes: int = 0
    segmenter_passes: int = 0
    verifier: dict[str, Any] = field(default_factory=dict)  # a verifier's pass: crops asked, images, seconds
    replicas: list[dict[str, float]] = field(default_factory=list)  # Ray: per model replica, its steady state
    ray_log: str = ""  # Ray: where its own messages went
    wall_seconds: float = 0.0
    interrupted: bool = False

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data (written to summary.json in the run directory)."""
        d = asdict(self)
        d["skipped"] = [{"relpath": r, "reason": why} for r, why in self.skipped]
        d["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        d["wall_seconds"] = round(self.wall_seconds, 4)
        return d


@dataclass
class LabelJob:
    """What an executor is handed: the pending fixed batches (`done` images in them are recomputed but
    not written again), the plan and settings, and where results and counts go."""

    batches: list[list[ImageInfo]]
    done: set[str]
    plan: RunPlan
    settings: RunSettings
    output_dir: Path
    summary: RunSummary
    progress: Progress
