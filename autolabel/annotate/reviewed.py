"""Which images of a corrections file a person really reviewed: only those become ground truth.

A CVAT task export or a COCO file holds every image of the task, looked at or not; scoring the untouched
ones would score the auto-labels against themselves. What counts as reviewed (`--reviewed`):

- `auto` (default): Label Studio: every task with a submitted annotation (not skipped, not rejected).
  CVAT and COCO: the images handed over for review (`autolabel sample -f cvat,coco` records them in
  `RUN/sample/handed_over.json`), and every image a person changed.
- `all`: every image of the file (CVAT/COCO: the person checked them all).
- `changed`: only the images whose labels differ from the run's.
- a file path: the images it lists, one relative path a line (e.g. `RUN/sample.txt`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autolabel.errors import UsageError
from autolabel.fsutil import write_text_atomic

MODES = ("auto", "all", "changed")
HANDED_OVER = Path("sample") / "handed_over.json"
NOT_REVIEWED = "unchanged and not handed over for review"


@dataclass(frozen=True)
class ReviewedRule:
    """`--reviewed`: a mode, or the set of images a file lists."""

    mode: str = "auto"
    listed: frozenset[str] | None = None
    source: str = ""  # the file, for messages

    @classmethod
    def parse(cls, text: str) -> ReviewedRule:
        if text in MODES:
            return cls(text)
        p = Path(text)
        if not p.is_file():
            raise UsageError(
                f"--reviewed '{text}': neither {', '.join(MODES)} nor a file listing images",
                hint="e.g. --reviewed changed, or --reviewed RUN/sample.txt (one relative path a line)",
            )
        try:
            names = {line.strip().replace("\\", "/") for line in p.read_text(encoding="utf-8").splitlines()}
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--reviewed '{p}' cannot be read ({e})") from None
        return cls("file", frozenset(n for n in names if n), str(p))

    def describe(self) -> str:
        return f"listed in {self.source}" if self.mode == "file" else self.mode


def handed_over(run_dir: Path) -> set[str]:
    """The images `autolabel sample -f …` handed over to an annotation tool (every sample so far)."""
    path = run_dir / HANDED_OVER
    if not path.is_file():
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(r) for r in data.get("images", [])}
    except (OSError, ValueError, AttributeError):
        return set()


def record_handed_over(run_dir: Path, relpaths: list[str], formats: list[str]) -> Path:
    """Add the images just handed over (for review in `formats`) to the run's record."""
    path = run_dir / HANDED_OVER
    images = sorted(handed_over(run_dir) | set(relpaths))
    write_text_atomic(path, json.dumps({"formats": formats, "images": images}, indent=1) + "\n")
    return path


def select(
    rule: ReviewedRule, source: str, images: list[str], changed: set[str], handed: set[str]
) -> tuple[list[str], list[str]]:
    """(reviewed relpaths, 'relpath: why' of those left out) among the images a corrections file holds.
    `source` is the file's kind: Label Studio marks reviewed tasks itself, CVAT and COCO do not."""
    if rule.mode == "all":
        return list(images), []
    if rule.mode == "changed":
        keep = [r for r in images if r in changed]
        why = "unchanged"
    elif rule.mode == "file":
        assert rule.listed is not None
        keep = [r for r in images if r in rule.listed]
        why = f"not listed in {rule.source}"
    elif source == "Label Studio JSON":  # auto: the annotation was submitted (the reader left out the others)
        return list(images), []
    else:
        keep = [r for r in images if r in changed or r in handed]
        why = NOT_REVIEWED
    kept = set(keep)
    return keep, [f"{r}: {why}" for r in images if r not in kept]
