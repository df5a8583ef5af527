"""Storing attached files on disk, safely.

Files live under ``ATTACHMENTS_DIR`` (default: ``<instance>/attachments``) with
a generated name (``ab/ab12...ef``, 32 hex digits), never the name the client
sent: that one is cleaned up and kept only in the database, for the download's
``Content-Disposition``. Each upload is checked for its size, its declared
content type (from the allowed list in the config) and, for formats with a
signature (PNG, JPEG, GIF, PDF, ZIP), that the bytes really are that format.

A file is written before its row is committed; if the commit fails the file
is removed again (``discard``), so no orphan is left behind.

    stored = store(upload, settings.attachments)   # StoredFile(storage_name, size, sha256, ...)
    ...                                            # add the Attachment row, commit
    path_of(stored.storage_name)                   # for send_file
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from werkzeug.datastructures import FileStorage

from ticketing.desk.settings import AttachmentSettings
from ticketing.errors import ApiError

_CHUNK = 64 * 1024
_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "application/zip": (b"PK\x03\x04", b"PK\x05\x06"),
}
_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|]')


@dataclass(frozen=True)
class StoredFile:
    storage_name: str
    filename: str
    content_type: str
    size: int
    sha256: str


def storage_root() -> Path:
    return Path(current_app.config["ATTACHMENTS_DIR"])


def path_of(storage_name: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", storage_name):
        raise ValueError(f"not a storage name: {storage_name!r}")
    return storage_root() / storage_name[:2] / storage_name


def clean_filename(name: str | None) -> str:
    """The client's file name without any path, control or reserved characters (max 255)."""
    name = (name or "").encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip(" .")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:255]
    return name or "attachment"


def content_type_of(upload: FileStorage) -> str:
    return (upload.mimetype or "").strip().lower()


def store(upload: FileStorage, limits: AttachmentSettings) -> StoredFile:
    """Check ``upload`` and write it under a generated name; ApiError when refused."""
    content_type = content_type_of(upload)
    if content_type not in limits.allowed_content_types:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"files of type {content_type or '(none)'} cannot be attached",
            details={"allowed": sorted(limits.allowed_content_types)},
        )
    storage_name = uuid.uuid4().hex
    final = path_of(storage_name)
    final.parent.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.stream.read(_CHUNK):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise ApiError(
                        413,
                        "payload_too_large",
                        "the file is too large",
                        details={"max_bytes": limits.max_bytes},
                    )
                if len(head) < 16:
                    head += chunk[: 16 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ApiError(
                422,
                "validation_error",
                "the request is not valid",
                details={"fields": {"multipart": {"file": ["The file is empty."]}}},
            )
        signatures = _SIGNATURES.get(content_type)
        if signatures and not head.startswith(signatures):
            raise ApiError(
                422,
                "validation_error",
                "the request is not valid",
                details={
                    "fields": {"multipart": {"file": [f"The content is not {content_type}."]}}
                },
            )
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return StoredFile(
        storage_name, clean_filename(upload.filename), content_type, size, digest.hexdigest()
    )


def discard(storage_name: str) -> None:
    """Remove a stored file whose database row did not commit."""
    path_of(storage_name).unlink(missing_ok=True)
