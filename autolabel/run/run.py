"""`Run`: a run directory opened for reading. Every command after `label` (export, eval, tune, review,
preview) reads a run through it: its typed metadata, its decision settings (with any overrides) and its
images with those decisions applied, one at a time.

    with Run.open("runs/data") as run:
        dec = run.decisions(ThresholdOverrides(class_thresholds={"car": 0.4}))
        for res in run.results(dec):
            ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from autolabel.decisions import DecisionCounts, DecisionSettings, decide
from autolabel.errors import UsageError
from autolabel.overrides import ThresholdOverrides
from autolabel.run.clips import frames_root, recorded_clips
from autolabel.run.store import RunMeta, RunStore, store_path
from autolabel.run.tracking import decide_clip
from autolabel.types import CandidateResult, ImageResult
from autolabel.video.clip import Clip, clip_of, locate


class Run:
    """An open run directory. Use as a context manager (or `close()`); one instance per thread."""

    def __init__(self, run_dir: Path, store: RunStore, meta: RunMeta) -> None:
        self.dir, self.store, self.meta = run_dir, store, meta
        self._clips: dict[str, Clip] | None = None

    @classmethod
    def open(cls, run_dir: str | Path) -> Run:
        """Open the run in `run_dir`; a UsageError says what is wrong when it holds no usable run."""
        run_dir = Path(run_dir)
        if not store_path(run_dir).is_file():
            raise UsageError(
                f"'{run_dir}' is not an autolabel run directory (no {store_path(run_dir).name})",
                hint="pass the --output directory of an `autolabel label` run",
            )
        store = RunStore(store_path(run_dir))
        try:
            meta = store.get_meta()
        except BaseException:
            store.close()
            raise
        if meta is None:
            store.close()
            raise UsageError(f"'{run_dir}' holds no run metadata", hint="rerun `autolabel label`")
        return cls(run_dir, store, meta)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def input_root(self) -> Path:
        return Path(self.meta.input_root)

    @property
    def source(self) -> str:
        """The labeled folder, or the object-storage URI of the images (`s3://bucket/prefix`)."""
        return self.meta.input_root

    @property
    def overrides(self) -> ThresholdOverrides:
        """The threshold overrides recorded by the last export (empty: the ontology's thresholds)."""
        return ThresholdOverrides.from_json(self.meta.overrides)

    def applied(self, overrides: ThresholdOverrides | None = None) -> ThresholdOverrides:
        """The overrides a command applies: the ones asked for, else the ones the last export recorded."""
        return self.overrides if overrides is None else overrides

    def ontology_decisions(self) -> DecisionSettings:
        """The decision settings of the ontology of the run's last `label`."""
        if not self.meta.decisions:
            raise UsageError("this run store has no decision settings", hint="rerun `autolabel label` once")
        return DecisionSettings.from_json(self.meta.decisions)

    def decisions(self, overrides: ThresholdOverrides | None = None) -> DecisionSettings:
        """The run's decisions: the ontology's (of its last `label`) with `overrides`, by default the ones
        its last export recorded. A threshold under the run's candidate floor cannot be honoured: the
        candidates below it were never stored."""
        dec = self.applied(overrides).apply(self.ontology_decisions())
        floor = self.meta.candidate_floor
        low = {c: t for c, t in zip(dec.classes, dec.class_thresholds) if t < floor - 1e-9}
        if low:
            raise UsageError(
                f"box threshold {', '.join(f'{c}={t}' for c, t in low.items())} is below the run's candidate "
                f"floor {floor}: candidates scoring less were not stored",
                hint=f"use thresholds >= {floor}, or relabel with a lower detector.candidate_threshold",
            )
        return dec

    def images(self) -> list[tuple[str, int, int]]:
        """(relpath, width, height) of every labeled image, sorted by relative path."""
        return list(self.store.iter_image_sizes())

    def candidates(self, relpaths: Iterable[str] | None = None) -> Iterator[CandidateResult]:
        """Stored candidates, sorted by relative path (only `relpaths` when given)."""
        return self.store.iter_candidates(relpaths)

    @property
    def frames_dir(self) -> Path:
        """Where the sampled frames of the run's videos were written."""
        return frames_root(self.dir)

    def location(self, relpath: str) -> str:
        """Where an image of the run is: a file path or an object's URI; a video's frame in `frames_dir`."""
        return locate(relpath, self.source, self.clips, self.frames_dir)

    @property
    def clips(self) -> dict[str, Clip]:
        """The videos of the run by relative path (their frames are images of the run)."""
        if self._clips is None:
            self._clips = recorded_clips(self.store)
        return self._clips

    def results(
        self,
        decisions: DecisionSettings | None = None,
        relpaths: Iterable[str] | None = None,
        counts: DecisionCounts | None = None,
        on_image: Callable[[], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Images with `decisions` applied (default: the run's own), one at a time, sorted by relative
        path; only `relpaths` when given. `counts` adds up what the decisions removed. The frames of a
        video are decided per track (`run.tracking`): a clip is read whole before its first frame comes."""
        for _, res in self.results_with_candidates(decisions, relpaths, counts):
            yield res
            if on_image is not None:
                on_image()

    def results_with_candidates(
        self,
        decisions: DecisionSettings | None = None,
        relpaths: Iterable[str] | None = None,
        counts: DecisionCounts | None = None,
    ) -> Iterator[tuple[CandidateResult, ImageResult]]:
        """As `results`, each decided image with the stored candidates it was decided from (read once)."""
        dec = decisions if decisions is not None else self.decisions()
        counts = counts if counts is not None else DecisionCounts()
        wanted = None if relpaths is None else set(relpaths)
        if wanted is not None:  # a frame is decided with its whole clip: its track needs the other frames
            touched = {c for r in wanted if (c := clip_of(r, self.clips)) is not None}
            relpaths = sorted(wanted.union(*(self.clips[c].frame_relpaths() for c in touched)))
        for cand, res in self._decided(dec, relpaths, counts):
            if wanted is None or res.relpath in wanted:
                yield cand, res

    def _decided(
        self, dec: DecisionSettings, relpaths: Iterable[str] | None, counts: DecisionCounts
    ) -> Iterator[tuple[CandidateResult, ImageResult]]:
        group: list[CandidateResult] = []  # the frames of the clip being read
        clip = ""
        for c in self.candidates(relpaths):
            this = clip_of(c.relpath, self.clips)
            if group and this != clip:
                yield from zip(group, decide_clip(group, self.clips[clip], dec, counts), strict=True)
                group = []
            if this is None:
                res = ImageResult(c.relpath, c.width, c.height, decide(c.candidates, c.width, c.height, dec, counts))
                yield c, res
            else:
                group.append(c)
                clip = this
        if group:
            yield from zip(group, decide_clip(group, self.clips[clip], dec, counts), strict=True)
