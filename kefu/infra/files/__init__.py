"""Attachment bytes, content-addressed by SHA-256. See docs/subsystems/attachments.md."""

from kefu.infra.files.base import FileStore
from kefu.infra.files.local import LocalFileStore
from kefu.infra.files.memory import MemoryFileStore

__all__ = ["FileStore", "LocalFileStore", "MemoryFileStore"]
