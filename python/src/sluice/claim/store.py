"""What claims need of a blob store: whole values by key. Two stores:
a local directory (DirStore, `sluice dev`'s) and S3 (sluice.claim.s3).
Both lay objects out as the platform's Go stores do
(registry/blob), so a claim one side stores the other reads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from sluice.claim.ref import check_key

SIDECAR_SUFFIX = ".sha256"
"""registry/blob.Dir: the file beside each object holding its SHA-256."""
TMP_PREFIX = ".sluice-tmp-"
"""registry/blob.Dir: the files a put writes before renaming them."""


class StoreError(Exception):
    """A store call that failed for a reason retrying does not fix."""


class NotFoundError(StoreError):
    """No object under the key."""


class UnreachableError(StoreError):
    """The store could not be reached, or answered that it is busy or
    failing (a 5xx): retry."""


class Store(Protocol):
    """Whole values by key. timeout_s bounds one call (None: the store's
    own bound)."""

    def get(self, key: str, timeout_s: float | None = None) -> bytes: ...

    def put(self, key: str, value: bytes, sha256_hex: str, timeout_s: float | None = None) -> None: ...

    def delete(self, key: str, timeout_s: float | None = None) -> None: ...


class DirStore:
    """Objects in a local directory: key "a/b" is the file <root>/a/b, its
    SHA-256 in <root>/a/b.sha256. A put writes a temporary file in the
    key's directory and renames it into place, so a reader never sees
    half an object."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if not str(root):
            raise ValueError("blob dir: empty root")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if why := check_key(key):
            raise StoreError(f"key {key!r} {why}")
        for seg in key.split("/"):
            if seg.startswith(TMP_PREFIX) or seg.endswith(SIDECAR_SUFFIX):
                raise StoreError(f"key {key!r}: segment {seg!r} is reserved")
        return self.root.joinpath(*key.split("/"))

    def get(self, key: str, timeout_s: float | None = None) -> bytes:
        p = self._path(key)
        try:
            return p.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{key!r} not found in {self.root}") from None
        except OSError as exc:
            raise StoreError(f"read {key!r}: {exc}") from exc

    def put(self, key: str, value: bytes, sha256_hex: str = "", timeout_s: float | None = None) -> None:
        p = self._path(key)
        sha256_hex = sha256_hex or hashlib.sha256(value).hexdigest()
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            data = _write_temp(p.parent, value)
            try:
                side = _write_temp(p.parent, (sha256_hex + "\n").encode())
                try:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(str(p) + SIDECAR_SUFFIX)
                    os.replace(data, p)
                    os.replace(side, str(p) + SIDECAR_SUFFIX)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(side)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(data)
        except OSError as exc:
            raise StoreError(f"write {key!r}: {exc}") from exc

    def delete(self, key: str, timeout_s: float | None = None) -> None:
        p = self._path(key)
        for name in (str(p) + SIDECAR_SUFFIX, str(p)):
            try:
                os.remove(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(f"delete {key!r}: {exc}") from exc


def _write_temp(dir_: Path, b: bytes) -> str:
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dir_)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
    except BaseException:
        os.remove(name)
        raise
    return name
