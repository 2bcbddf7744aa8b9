"""Where a task's image is, the way Label Studio serves it, read safely.

- `/data/local-files/?d=REL`: REL under the local-files document root (`--document-root`, else
  LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); `..`, absolute paths and links leading out are refused.
- `/data/upload/…` (and other Label Studio paths): fetched from Label Studio with the token it gave in
  `/setup` (or `--labelstudio-url` / `--labelstudio-token`).
- `s3://`, `gs://`, `az://`: read through the storage layer; `http(s)://` (presigned URLs): fetched.

Every read is bounded in bytes and time; an image is decoded with the decompression-bomb limit.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

import numpy as np

from autolabel.errors import ImageError, UsageError
from autolabel.images import DEFAULT_MAX_IMAGE_PIXELS, decode_image
from autolabel.storage import fetch, is_uri

FETCH_TIMEOUT = 30.0


class BadSource(UsageError):
    """A task image that cannot or may not be read (answered 4xx)."""


class Refused(UsageError):
    """A request that cannot be answered as asked (HTTP 4xx with the reason)."""

    def __init__(self, message: str, status: int = 422, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass
class Sources:
    document_root: Path | None = None
    labelstudio_url: str | None = None
    labelstudio_token: str | None = None
    max_bytes: int = 200 * 2**20
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS

    def located(self, url: str) -> tuple[str, str]:
        """("file", path) | ("uri", s3://…) | ("http", url) for a task's image reference."""
        if not isinstance(url, str) or not url:
            raise BadSource("the task has no image reference")
        if is_uri(url):
            return "uri", url
        parts = urlsplit(url)
        if parts.scheme not in ("", "http", "https"):
            raise BadSource(f"image reference '{url[:200]}': scheme '{parts.scheme}' is not served")
        if parts.path.rstrip("/").endswith("/data/local-files"):
            return "file", str(self._local(parse_qs(parts.query).get("d", [""])[0]))  # parse_qs unquotes
        if parts.scheme:
            return "http", url
        if not parts.path.startswith("/"):
            raise BadSource(f"image reference '{url[:200]}': not a Label Studio URL, a bucket URI or an http(s) URL")
        if not self.labelstudio_url:
            raise BadSource(
                f"'{url[:200]}' is served by Label Studio, whose address is unknown",
                hint="connect the backend in Label Studio (it sends its address on setup) or pass --labelstudio-url",
            )
        return "http", self.labelstudio_url.rstrip("/") + url

    def _local(self, rel: str) -> Path:
        root = self.document_root
        if root is None:
            raise BadSource(
                "a local-files image, and no document root: pass --document-root (Label Studio's "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"
            )
        pure = PurePosixPath(rel.replace("\\", "/"))
        if not rel or pure.is_absolute() or ".." in pure.parts or "\x00" in rel:
            raise BadSource(f"local file '{rel[:200]}' is outside the document root")
        path = root / Path(*pure.parts)
        real, top = path.resolve(), root.resolve()
        if real != top and top not in real.parents:
            raise BadSource(f"local file '{rel[:200]}' leads outside the document root")
        return path

    def read(self, kind: str, where: str) -> np.ndarray:
        try:
            if kind == "file":
                p = Path(where)
                if not p.is_file():
                    raise BadSource(f"local file '{where}' does not exist")
                if p.stat().st_size > self.max_bytes:
                    raise BadSource(f"'{where}' is over {self.max_bytes} bytes")
                data = p.read_bytes()
            elif kind == "uri":
                data = fetch(where)
            else:
                data = self._http(where)
            if len(data) > self.max_bytes:
                raise BadSource(f"'{where[:200]}' is over {self.max_bytes} bytes")
            return decode_image(data, self.max_pixels)
        except ImageError as e:
            raise BadSource(f"'{where[:200]}': {e}") from None
        except OSError as e:
            raise BadSource(f"'{where[:200]}' cannot be read ({e})") from None

    def read_bytes(self, data: bytes) -> np.ndarray:
        if len(data) > self.max_bytes:
            raise BadSource(f"the image is over {self.max_bytes} bytes")
        try:
            return decode_image(data, self.max_pixels)
        except ImageError as e:
            raise BadSource(f"the image: {e}") from None

    def _http(self, url: str) -> bytes:
        headers = {}
        if self.labelstudio_url and self.labelstudio_token and url.startswith(self.labelstudio_url.rstrip("/")):
            headers["Authorization"] = f"Token {self.labelstudio_token}"
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as r:
                data = r.read(self.max_bytes + 1)
        except urllib.error.HTTPError as e:
            raise BadSource(f"'{url[:200]}': HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise BadSource(f"'{url[:200]}' cannot be fetched ({e})") from None
        return bytes(data)


def document_root(option: Path | None) -> Path | None:
    env = os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
    root = option or (Path(env) if env else None)
    return root.resolve() if root is not None else None
