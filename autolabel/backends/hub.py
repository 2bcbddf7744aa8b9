"""Resolve a model reference (hub id, local directory or checkpoint file) before any slow loading.

transformers retries an unreachable hub for minutes; we decide up front, in well under a second:
a local path is used as is, a cached hub snapshot is used offline, and an uncached hub id is only
tried when the hub answers a TCP connect. Otherwise the user gets a ModelLoadError saying which model
and how to point at a local copy.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from autolabel.errors import ModelLoadError

_PATH_PREFIXES = ("/", "./", "../", "~", "\\")


def looks_like_path(ref: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else (absolute, ./, a checkpoint file, a/b/c) is a path."""
    return ref.startswith(_PATH_PREFIXES) or ref.endswith((".pt", ".pth", ".safetensors")) or ref.count("/") > 1


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _probe_address() -> tuple[str, int]:
    """Where a TCP connect tells whether the hub can be reached: the hub itself, or the HTTPS proxy
    that requests/httpx would use for it (HTTPS_PROXY / https_proxy, unless NO_PROXY covers the hub)."""
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    u = urlparse(endpoint)
    host, port = u.hostname or "huggingface.co", u.port or (443 if u.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(u.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        pu = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return pu.hostname or host, pu.port or (443 if pu.scheme == "https" else 80)
    return host, port


def _hub_reachable(timeout: float = 3.0) -> bool:
    host, port = _probe_address()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_snapshot(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, partially cached, or a malformed id
        return None


def _hint(role: str, ref: str, option: str) -> str:
    return models_hint([(role, ref, option)])


def models_hint(missing: list[tuple[str, str, str]]) -> str:
    """How to get each missing model (role, hub id, CLI option) onto an offline machine, and what is set."""
    each = "; ".join(
        f"the {role}: `hf download {ref} --local-dir models/{ref.split('/')[-1]}`, then `{option} "
        f"models/{ref.split('/')[-1]}` (or `model:` in the ontology's {role} section)"
        for role, ref, option in missing
    )
    if _offline():
        cache = "HF_HUB_OFFLINE=1 is set already: only local directories and the Hugging Face cache are used."
    else:
        cache = "With the models already in the Hugging Face cache, set HF_HUB_OFFLINE=1 to skip the network."
    demo = " ".join(f"{role.upper()}_MODEL=DIR" for role, _, _ in missing)
    return (
        f"on a machine with internet download each model and copy its directory here — {each}. {cache} "
        f"For the demo: make demo {demo}."
    )


def resolve_model(ref: str, role: str, option: str) -> tuple[str, bool]:
    """Return (what to pass to from_pretrained, is_local). Raises ModelLoadError fast when unloadable.

    `role` is e.g. "detector" and `option` the CLI flag that overrides it, both used in messages.
    """
    expanded = os.path.expanduser(ref)
    if os.path.exists(expanded):
        return str(Path(expanded).resolve()), True
    if looks_like_path(ref):
        raise ModelLoadError(
            f"{role} model path '{ref}' does not exist",
            hint=f"check the path, or use a hub id such as the default; set it with `{option}`",
        )
    cached = _cached_snapshot(ref)
    if cached is not None:
        return cached, True
    if _offline():
        raise ModelLoadError(
            f"{role} model '{ref}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            hint=_hint(role, ref, option),
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"{role} model '{ref}' cannot be downloaded: the Hugging Face hub is unreachable "
            "and the model is not in the local cache",
            hint=_hint(role, ref, option),
        )
    return ref, False


def hub_revision(ref: str) -> str | None:
    """The commit of a hub model: the cached snapshot's, else (online) the hub's current one."""
    cached = _cached_snapshot(ref)
    if cached is not None:
        return Path(cached).name
    if _offline() or not _hub_reachable():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(ref, timeout=10).sha
    except Exception:  # gated, renamed or a flaky network: the loader reports it properly
        return None


def model_identity(ref: str) -> str:
    """A stable identity for fingerprints: a hub id with the revision (commit) that is used, so a hub
    update between resumes is noticed; for a local directory its path plus a hash of its configs."""
    import hashlib

    expanded = os.path.expanduser(ref)
    if not os.path.exists(expanded):
        if looks_like_path(ref):
            return ref
        rev = hub_revision(ref)
        return f"{ref}@{rev}" if rev else ref
    p = Path(expanded).resolve()
    h = hashlib.sha256()
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    for f in files:
        st = f.stat()
        h.update(f.name.encode())
        h.update(f.read_bytes() if f.suffix == ".json" else f"{st.st_size}".encode())
    if p.is_dir():
        for w in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")) + sorted(p.glob("*.pt")):
            h.update(f"{w.name}:{w.stat().st_size}".encode())
    return f"{p}#{h.hexdigest()[:16]}"


def wrap_load_error(role: str, ref: str, option: str, exc: BaseException) -> ModelLoadError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.path.exists(os.path.expanduser(ref)) or looks_like_path(ref):  # no `hf download <local path>` advice
        return ModelLoadError(
            f"could not load {role} model '{ref}': {first}",
            hint=f"point {option} at a directory saved by transformers (`save_pretrained`) that "
            f"holds a {role} checkpoint of the backend's family (see `autolabel backends`)",
        )
    return ModelLoadError(
        f"could not load {role} model '{ref}': {first}",
        hint=f"is it a {role} checkpoint saved by transformers? " + _hint(role, ref, option),
    )
