"""What a `label` run reads: a folder (recursively: images and videos), one image or video file, or a
prefix in object storage (`s3://bucket/prefix/`, `gs://…`, `az://…`, images), listed once into the run's
manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autolabel.errors import UsageError
from autolabel.images import IMAGE_EXTENSIONS, discover_images
from autolabel.storage import is_uri, join, list_images, manifest_text, read_manifest, signature
from autolabel.types import ImageInfo
from autolabel.video.decode import VIDEO_EXTENSIONS

_NONE_FOUND_HINT = "supported extensions: " + " ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS) + " (any case)"


@dataclass
class Found:
    source: str  # the resolved folder, or the URI
    images: list[ImageInfo]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relpath, why) that cannot be labeled
    single_file: bool = False
    manifest: str | None = None  # a fresh object-storage listing, to keep in the run directory
    videos: list[ImageInfo] = field(default_factory=list)  # video files (local input only)


def discover_input(
    input_path: str | Path,
    limit: int | None = None,
    run_dir: Path | None = None,
    relist: bool = False,
    only: tuple[str, ...] | None = None,
) -> Found:
    """The images of a folder, of one image file (its folder is the root), or of an object-storage prefix:
    listed once, then read from the run's manifest (`relist` lists again, to find new or changed objects).
    `only`: just these relative paths (a video by its path, or by one of its frames')."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if is_uri(input_path):
        found = _from_storage(str(input_path), run_dir, relist)
    else:
        found = _from_disk(Path(input_path))
    if not found.images and not found.videos:
        raise UsageError(f"no images or videos found under '{input_path}'", hint=_NONE_FOUND_HINT)
    if only is not None:
        _keep_only(found, only, str(input_path))
    if limit is not None:
        found.images = found.images[:limit]
        found.videos = found.videos[: max(0, limit - len(found.images))]
    return found


def _from_disk(p: Path) -> Found:
    if p.is_file():
        one = [ImageInfo(relpath=p.name, path=str(p))]
        if p.name.lower().endswith(VIDEO_EXTENSIONS):
            return Found(str(p.resolve().parent), [], single_file=True, videos=one)
        if not p.name.lower().endswith(IMAGE_EXTENSIONS):
            raise UsageError(f"'{p}' is not an image or video file", hint=_NONE_FOUND_HINT)
        return Found(str(p.resolve().parent), one, single_file=True)
    problems: list[tuple[str, str]] = []
    files = discover_images(p, problems, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    videos = [f for f in files if f.relpath.lower().endswith(VIDEO_EXTENSIONS)]
    images = [f for f in files if not f.relpath.lower().endswith(VIDEO_EXTENSIONS)]
    return Found(str(p.resolve()), images, problems, videos=videos)


def _from_storage(uri: str, run_dir: Path | None, relist: bool) -> Found:
    uri = uri.rstrip("/")
    kept = None if relist or run_dir is None else read_manifest(run_dir, uri)
    objects = kept if kept is not None else list_images(uri, IMAGE_EXTENSIONS)
    images = [ImageInfo(o["relpath"], join(uri, o["relpath"]), signature(o)) for o in objects]
    fresh = manifest_text(uri, objects) if kept is None else None
    return Found(uri, images, manifest=fresh)


def _keep_only(found: Found, only: tuple[str, ...], where: str) -> None:
    """Keep the listed images (and the videos a listed frame belongs to); a listed path that is not there
    is an error naming it."""
    wanted = {p.replace("\\", "/").lstrip("./") for p in only}
    found.images = [im for im in found.images if im.relpath in wanted]
    frames = {p.rsplit("/", 1)[0] for p in wanted if "/" in p}
    found.videos = [v for v in found.videos if v.relpath in wanted or v.relpath in frames]
    found.problems = [(r, why) for r, why in found.problems if r in wanted]
    known = {im.relpath for im in found.images} | {v.relpath for v in found.videos} | {r for r, _ in found.problems}
    missing = sorted(p for p in wanted if p not in known and p.rsplit("/", 1)[0] not in known)
    if missing:
        raise UsageError(
            f"--images: {len(missing)} listed paths are not under '{where}': {', '.join(missing[:5])}"
            + (" …" if len(missing) > 5 else ""),
            hint="list paths relative to the input folder, one per line (as `autolabel sample` writes them)",
        )
