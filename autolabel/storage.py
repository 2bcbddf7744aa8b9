"""Images in object storage: `s3://bucket/prefix/` (boto3), `gs://…`, `az://container/…` (Apache Arrow's
file systems); `pip install 'autolabel[cloud]'`. Credentials, region and endpoint come from the standard
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
from pathlib import Path
from typing import Any

from autolabel.errors import ImageError, MissingDependencyError, UsageError

SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "abfs", "abfs": "abfs", "abfss": "abfs"}
MANIFEST = "manifest.jsonl"
FETCH_TRIES = 4
_STORES: dict[str, Any] = {}  # one client per bucket and process
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


def _split(uri: str) -> tuple[str, str, str]:
    """(scheme, bucket, key prefix) of a URI."""
    scheme, rest = uri.split("://", 1)
    bucket, _, key = rest.partition("/")
    return SCHEMES[scheme.lower()], bucket, key.strip("/")


def _store(uri: str) -> Any:
    """The client of a URI's bucket (cached per bucket and process)."""
    scheme, bucket, _ = _split(uri)
    name = f"{scheme}://{bucket}"
    if name not in _STORES:
        _STORES[name] = S3Store(bucket) if scheme == "s3" else ArrowStore(scheme, bucket)
    return _STORES[name]


class S3Store:
    """S3 and S3-compatible stores through boto3: its listing gives each object's ETag, so a changed object
    is known by its content, not only its time."""

    def __init__(self, bucket: str) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise MissingDependencyError("s3:// images need boto3", hint="pip install 'autolabel[cloud]'") from None
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        retries = Config(retries={"max_attempts": FETCH_TRIES, "mode": "standard"})  # backoff on throttling
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, config=retries)

    def list(self, prefix: str) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix + "/" if prefix else ""
            )
            for page in pages:
                for o in page.get("Contents", []):
                    out.append(
                        {
                            "key": o["Key"],
                            "size": int(o["Size"]),
                            "etag": str(o.get("ETag", "")).strip('"'),
                            "mtime_ns": int(o["LastModified"].timestamp() * 1e9),
                        }
                    )
        except (ClientError, BotoCoreError) as e:
            raise OSError(str(e)) from None
        return out

    def fetch(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except NoCredentialsError:  # no retry brings them
            raise PermissionError("no credentials found (AWS_ACCESS_KEY_ID / AWS_PROFILE / ~/.aws)") from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from None
            if code in ("AccessDenied", "403"):
                raise PermissionError(str(e)) from None
            raise OSError(str(e)) from None
        except BotoCoreError as e:  # connection errors, timeouts: worth another try
            raise OSError(str(e)) from None


class ArrowStore:
    """Google Cloud Storage and Azure Blob Storage through Apache Arrow's file systems (`fs`: any Arrow file
    system holding the bucket, e.g. an S3 one in tests)."""

    def __init__(self, scheme: str, bucket: str, fs: Any = None) -> None:
        try:
            import pyarrow.fs as pafs
        except ImportError:
            raise MissingDependencyError(
                f"{scheme}:// images need Apache Arrow", hint="pip install 'autolabel[cloud]'"
            ) from None
        self.pafs, self.bucket = pafs, bucket
        if fs is not None:
            self.fs = fs
        elif scheme == "gs":
            self.fs = pafs.GcsFileSystem()
        else:
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            if not account:
                raise UsageError("az:// needs AZURE_STORAGE_ACCOUNT_NAME (and AZURE_STORAGE_ACCOUNT_KEY or a login)")
            self.fs = pafs.AzureFileSystem(
                account_name=account, account_key=os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
            )

    def list(self, prefix: str) -> list[dict[str, Any]]:
        pafs = self.pafs
        where = f"{self.bucket}/{prefix}".rstrip("/")
        infos = self.fs.get_file_info(pafs.FileSelector(where, recursive=True))
        return [
            {"key": i.path[len(self.bucket) + 1 :], "size": int(i.size or 0), "mtime_ns": int(i.mtime_ns or 0)}
            for i in infos
            if i.type == pafs.FileType.File
        ]

    def fetch(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.bucket}/{key}") as f:
            return bytes(f.read())


def list_images(uri: str, extensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every image object under the URI's prefix, sorted by relative path: {relpath, size, etag (S3),
    mtime_ns}. Hidden names (a part starting with '.') are left out, as for folders."""
    _, _, prefix = _split(uri)
    try:
        objects = _store(uri).list(prefix)
    except FileNotFoundError:
        raise UsageError(f"nothing found under '{uri}'", hint="check the bucket and the prefix") from None
    except OSError as e:
        raise UsageError(f"cannot list '{uri}': {e}", hint="check the bucket name, credentials and endpoint") from None
    out = []
    for o in objects:
        key = o.pop("key")
        rel = key[len(prefix) + 1 :] if prefix else key
        if not rel.lower().endswith(extensions) or any(part.startswith(".") for part in rel.split("/")):
            continue
        out.append({"relpath": rel, **o})
    if not out and not objects:
        raise UsageError(f"nothing found under '{uri}'", hint="check the bucket and the prefix")
    return sorted(out, key=lambda o: o["relpath"])


def signature(obj: dict[str, Any]) -> str:
    """What an object was when listed: its size and ETag (S3: a changed content changes it), else its size
    and modification time, as local files are signed."""
    return f"{obj['size']}:{obj['etag']}" if obj.get("etag") else f"{obj['size']}:{obj['mtime_ns']}"


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
    store, (_, _, key) = _store(uri), _split(uri)
    for attempt in range(tries):
        try:
            return bytes(store.fetch(key))
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
