"""Images in object storage: `s3://bucket/prefix/`, `gs://…`, `az://container/…` (Apache Arrow's file
systems, `pip install 'autolabel[cloud]'`). Credentials, region and endpoint come from the standard
environment of each store (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION / AWS_ENDPOINT_URL for
S3 and S3-compatible stores such as MinIO; GOOGLE_APPLICATION_CREDENTIALS; AZURE_STORAGE_ACCOUNT_NAME
and its key).

The listing is made once (paginated by the store's own API) into a manifest in the run directory; a rerun
uses it unless asked to list again. Bytes are fetched where they are decoded, with retries and backoff;
an object that is gone or unreadable is reported as the image's reason to be skipped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path, PurePosixPath
from typing import Any

from autolabel.errors import ImageError, MissingDependencyError, UsageError

SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "abfs", "abfs": "abfs", "abfss": "abfs"}
MANIFEST = "manifest.jsonl"
FETCH_TRIES = 4
_FILESYSTEMS: dict[str, Any] = {}  # one per store and process
CREDENTIAL_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_")  # what a local Ray's workers need from the driver


def is_uri(location: str | Path) -> bool:
    """True for an object-storage location (`s3://…`, `gs://…`, `az://…`)."""
    text = str(location)
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def join(root: str, relpath: str) -> str:
    """An image's location: the root (a folder or a URI) and its relative path."""
    if is_uri(root):
        return root.rstrip("/") + "/" + relpath
    return str(Path(root) / relpath)


def _filesystem(uri: str) -> tuple[Any, str]:
    """(Arrow file system, path inside it) for a URI; the file system is cached per store."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise MissingDependencyError(
            "images in object storage need Apache Arrow", hint="pip install 'autolabel[cloud]'"
        ) from None
    scheme, rest = uri.split("://", 1)
    scheme = SCHEMES[scheme.lower()]
    bucket = rest.split("/", 1)[0]
    key = f"{scheme}://{bucket}"
    if key not in _FILESYSTEMS:
        _FILESYSTEMS[key] = _make_filesystem(pafs, scheme, bucket)
    return _FILESYSTEMS[key], rest.rstrip("/")


def _make_filesystem(pafs: Any, scheme: str, bucket: str) -> Any:
    if scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kw: dict[str, Any] = {}
        if endpoint:  # an S3-compatible store (MinIO, Ceph, R2, a test server)
            kw["scheme"], _, kw["endpoint_override"] = endpoint.partition("://")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kw["region"] = region
        return pafs.S3FileSystem(**kw)
    if scheme == "gs":
        return pafs.GcsFileSystem()
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise UsageError("az:// needs AZURE_STORAGE_ACCOUNT_NAME (and AZURE_STORAGE_ACCOUNT_KEY or a login)")
    return pafs.AzureFileSystem(account_name=account, account_key=os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"))


def list_images(uri: str, extensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every image object under the URI's prefix, sorted by relative path: {relpath, size, mtime_ns}.
    Hidden names (a part starting with '.') are left out, as for folders."""
    import pyarrow.fs as pafs

    fs, prefix = _filesystem(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
    except FileNotFoundError:
        raise UsageError(f"nothing found under '{uri}'", hint="check the bucket and the prefix") from None
    except OSError as e:
        raise UsageError(f"cannot list '{uri}': {e}", hint="check the bucket name, credentials and endpoint") from None
    out = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.lower().endswith(extensions):
            continue
        rel = PurePosixPath(info.path).relative_to(prefix).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        out.append({"relpath": rel, "size": int(info.size or 0), "mtime_ns": int(info.mtime_ns or 0)})
    return sorted(out, key=lambda o: o["relpath"])


def signature(obj: dict[str, Any]) -> str:
    """What an object was when listed (size and modification time), as local files are signed."""
    return f"{obj['size']}:{obj['mtime_ns']}"


def read_manifest(run_dir: Path, uri: str) -> list[dict[str, Any]] | None:
    """The listing a run kept for `uri`, or None when it has none (or one of another location)."""
    path = run_dir / MANIFEST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        head = json.loads(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if head.get("source") != uri.rstrip("/"):
        return None
    return [json.loads(line) for line in lines[1:]]


def manifest_text(uri: str, objects: list[dict[str, Any]]) -> str:
    """A manifest: a header line (the location, when it was listed), then one object per line."""
    head = {"source": uri.rstrip("/"), "listed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return "\n".join([json.dumps(head)] + [json.dumps(o, separators=(",", ":")) for o in objects]) + "\n"


def fetch(uri: str, tries: int = FETCH_TRIES, backoff: float = 0.5) -> bytes:
    """An object's bytes, retried with exponential backoff on errors that may pass (network, throttling);
    ImageError with the reason when it is gone or keeps failing."""
    fs, path = _filesystem(uri)
    for attempt in range(tries):
        try:
            with fs.open_input_stream(path) as f:
                return bytes(f.read())
        except FileNotFoundError:
            raise ImageError("object not found (deleted since it was listed? rerun with --relist)") from None
        except PermissionError as e:
            raise ImageError(f"access denied: {e}") from None
        except OSError as e:
            if "ACCESS_DENIED" in str(e).upper():
                raise ImageError(f"access denied: {e}") from None
            if attempt == tries - 1:
                raise ImageError(f"cannot fetch after {tries} tries: {e}") from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def credentials_env() -> dict[str, str]:
    """The storage credentials and endpoints of this process's environment (for workers it starts)."""
    return {k: v for k, v in os.environ.items() if k.startswith(CREDENTIAL_PREFIXES)}
