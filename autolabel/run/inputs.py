"""What a `label` run reads: a folder (recursively), one image file, or a prefix in object storage
(`s3://bucket/prefix/`, `gs://…`, `az://…`), listed once into the run's manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autolabel.errors import UsageError
from autolabel.images import IMAGE_EXTENSIONS, discover_images
from autolabel.storage import is_uri, join, list_images, manifest_text, read_manifest, signature
from autolabel.types import ImageInfo

_NONE_FOUND_HINT = "supported extensions: " + " ".join(IMAGE_EXTENSIONS) + " (any case)"


@dataclass
class Found:
    source: str  # the resolved folder, or the URI
    images: list[ImageInfo]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relpath, why) that cannot be labeled
    single_file: bool = False
    manifest: str | None = None  # a fresh object-storage listing, to keep in the run directory


def discover_input(
    input_path: str | Path, limit: int | None = None, run_dir: Path | None = None, relist: bool = False
) -> Found:
    """The images of a folder, of one image file (its folder is the root), or of an object-storage prefix:
    listed once, then read from the run's manifest (`relist` lists again, to find new or changed objects)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if is_uri(input_path):
        found = _from_storage(str(input_path), run_dir, relist)
    else:
        found = _from_disk(Path(input_path))
    if not found.images:
        raise UsageError(f"no images found under '{input_path}'", hint=_NONE_FOUND_HINT)
    if limit is not None:
        found.images = found.images[:limit]
    return found


def _from_disk(p: Path) -> Found:
    if p.is_file():
        if not p.name.lower().endswith(IMAGE_EXTENSIONS):
            raise UsageError(f"'{p}' is not an image file", hint="supported: " + " ".join(IMAGE_EXTENSIONS))
        return Found(str(p.resolve().parent), [ImageInfo(relpath=p.name, path=str(p))], single_file=True)
    problems: list[tuple[str, str]] = []
    images = discover_images(p, problems)
    return Found(str(p.resolve()), images, problems)


def _from_storage(uri: str, run_dir: Path | None, relist: bool) -> Found:
    uri = uri.rstrip("/")
    kept = None if relist or run_dir is None else read_manifest(run_dir, uri)
    objects = kept if kept is not None else list_images(uri, IMAGE_EXTENSIONS)
    images = [ImageInfo(o["relpath"], join(uri, o["relpath"]), signature(o)) for o in objects]
    fresh = manifest_text(uri, objects) if kept is None else None
    return Found(uri, images, manifest=fresh)
