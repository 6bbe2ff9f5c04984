"""A cache of built graphs: files named by a key over everything they were built from (the
weights' hash, the runtime's and builder's versions, the settings), each stored with its own
digest. A file whose digest does not match, or that the runtime refuses, is rebuilt, never
trusted; a cache that cannot be written is skipped (the graph is built in memory)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

CACHE_ENV = "SEQEXIT_CACHE"


def user_cache_dir() -> Path:
    """$SEQEXIT_CACHE, else $XDG_CACHE_HOME/seqexit, else ~/.cache/seqexit."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqexit"


def tensors_digest(tensors: Iterable[torch.Tensor], *settings: object) -> str:
    """A hex key over the bytes, shapes and dtypes of `tensors` and the `settings`' text."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    digest.update(repr(settings).encode())
    return digest.hexdigest()


def cached_bytes(folder: Path | None, key: str, build: Callable[[], bytes], accept: Callable[[bytes], object]):
    """`accept(data)` for the file `key` in `folder` if it is intact and accepted, else for
    freshly built bytes (then written there, atomically); returns what `accept` returned.
    folder None: no cache."""
    path = folder / f"{key}.onnx" if folder is not None else None
    if path is not None:
        data = _read_checked(path)
        if data is not None:
            try:
                return accept(data)
            except Exception:  # noqa: BLE001 - a file the runtime refuses is rebuilt
                pass
    data = build()
    result = accept(data)
    if path is not None:
        _write_checked(path, data)
    return result


def _read_checked(path: Path) -> bytes | None:
    """The file's bytes if its stored digest matches, else None."""
    try:
        data = path.read_bytes()
        stored = path.with_suffix(".sha256").read_text().strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == stored else None


def _write_checked(path: Path, data: bytes) -> None:
    """Write `data` and its digest next to it (temporary names, then renamed); any OSError
    (read-only folder, full disk) leaves the cache as it was."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, data), (path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode())):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)
    except OSError:
        for leftover in path.parent.glob(f".{path.stem}*.{os.getpid()}.tmp") if path.parent.is_dir() else ():
            leftover.unlink(missing_ok=True)
