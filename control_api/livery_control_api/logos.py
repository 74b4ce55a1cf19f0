"""Logo uploads: checked, then stored under the tenant's file storage prefix."""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from livery.naming import storage_prefix
from livery.storage import StorageError, open_storage

from .context import AppContext
from .errors import InvalidInput, Unavailable

MAX_LOGO_BYTES = 512 * 1024

# Each allowed format with the bytes its files start with, so a renamed file is rejected.
# SVG is not accepted: it can carry scripts, event handlers and external references
# that a substring check cannot rule out, and a raster logo serves every page.
LOGO_FORMATS = {
    "image/png": ("png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": ("jpg", (b"\xff\xd8\xff",)),
    "image/webp": ("webp", (b"RIFF",)),
}


def _open_storage(context: AppContext):
    settings = context.settings
    files_dir = Path(settings.files_dir) if settings.files_dir else None
    try:
        return open_storage(settings.s3_bucket, settings.s3_endpoint_url, files_dir)
    except StorageError as exc:
        raise Unavailable(f"logo uploads need file storage: {exc}") from None


async def store_logo(context: AppContext, tenant: str, upload: UploadFile) -> str:
    """Store the uploaded logo and return the `/branding/...` URL the tenant app serves it at."""
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in LOGO_FORMATS:
        raise InvalidInput(
            f"logo must be PNG, JPEG or WebP (SVG is not accepted), got content type {content_type or 'none'!r}",
            field="file",
        )
    data = await upload.read(MAX_LOGO_BYTES + 1)
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidInput(f"logo must be at most {MAX_LOGO_BYTES // 1024} KiB", field="file")
    extension, signatures = LOGO_FORMATS[content_type]
    head = data[:16]
    if not any(head.startswith(signature) for signature in signatures) or (extension == "webp" and head[8:12] != b"WEBP"):
        raise InvalidInput(f"logo content is not a {extension.upper()} file", field="file")

    file_name = f"logo.{extension}"
    storage = _open_storage(context)
    try:
        await run_in_threadpool(storage.put_bytes, f"{storage_prefix(tenant)}branding/{file_name}", data, content_type)
    except StorageError as exc:
        raise Unavailable(f"storing the logo failed: {exc}") from None
    return f"/branding/{file_name}"
