"""Reading uploaded files with a size cap."""

from __future__ import annotations

from fastapi import UploadFile

from ..errors import AppError

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


async def read_upload(upload: UploadFile, field: str = "file") -> bytes:
    """Return the upload's bytes, or raise 413 once it passes MAX_UPLOAD_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise AppError(413, "too_large", f"{field}: must be at most {MAX_UPLOAD_BYTES} bytes", field)
        chunks.append(chunk)
    if size == 0:
        raise AppError(422, "invalid", f"{field}: must not be empty", field)
    return b"".join(chunks)
