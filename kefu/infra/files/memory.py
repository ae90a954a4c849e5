"""In-memory file store, the fake beside ``LocalFileStore``."""

from __future__ import annotations

import hashlib

from kefu.domain.errors import NotFound


class MemoryFileStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._blobs[digest] = data
        return digest

    def get(self, sha256: str) -> bytes:
        try:
            return self._blobs[sha256]
        except KeyError:
            raise NotFound("file not found") from None

    def exists(self, sha256: str) -> bool:
        return sha256 in self._blobs
