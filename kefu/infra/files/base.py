"""The file-store interface: put bytes, get them back by their SHA-256."""

from __future__ import annotations

from typing import Protocol


class FileStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` and return its hex SHA-256. Storing the same bytes twice is free."""
        ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...
