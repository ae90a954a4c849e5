"""Files on local disk under ``<data_dir>/files/ab/cd/<sha256>``.

Writes go to a temporary file that is fsynced and renamed, so a crash never leaves a
half-written file under a valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from kefu.domain.errors import NotFound

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# A new temporary file, never an existing one (as ``tempfile.mkstemp`` opens it).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise NotFound("file not found")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, _CREATE, 0o600)
        except FileNotFoundError:
            # The first file under this prefix (one directory in 65,536): inbound mail
            # writes a file per message, so the directory is not made every time.
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound("file not found") from None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()
