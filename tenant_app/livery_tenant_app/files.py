"""Data functions for files: uploads within the plan's storage limit, listings and download links.

Object keys are `tenants/<name>/<path>`, where `<path>` is checked here by
whole path segment before it reaches the storage layer. The plan's `storageMiB`
is enforced before anything is written: the sizes recorded in the database
are summed under a per-tenant advisory lock, so two uploads cannot both take
the last free bytes.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from livery.naming import storage_prefix
from livery.storage import InvalidKeyError, check_key

from .catalogue import CURRENT_TENANT, parse_id
from .db.models import StoredFile
from .errors import AppError

logger = logging.getLogger(__name__)

MAX_SEGMENT_LENGTH = 255
DOWNLOAD_LINK_SECONDS = 300
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
MIB = 1024 * 1024
# Top-level folders that only the control API writes: `branding/` contains the logo and favicon,
# which `/branding/{name}` serves to anyone.
RESERVED_FOLDERS = frozenset({"branding"})

# Raster image signatures; SVG is refused because it can carry scripts.
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def check_relative_path(path: str, field: str = "path") -> str:
    """Return `path` if it is a safe key below the tenant's prefix, or raise a 400 naming the rule it breaks.

    `livery.storage.check_key` checks whole path segments, also after
    percent-decoding: `..`, `.`, empty segments, absolute paths, backslashes
    and control characters are rejected, so no key can leave the prefix.
    """
    try:
        return check_key(path, field)
    except InvalidKeyError as exc:
        raise AppError(400, "invalid_key", str(exc), field) from None


def check_user_path(path: str, field: str = "path") -> str:
    """Return `path` if users may write there: a safe key outside the reserved folders, else raise 400."""
    relative = check_relative_path(path, field)
    # Compared case-insensitively and percent-decoded, because a local files folder may be on a
    # case-insensitive file system.
    top = unquote(relative.split("/", 1)[0]).casefold()
    if top in RESERVED_FOLDERS:
        raise AppError(
            400, "invalid_key",
            f"{field}: {path!r} is in the reserved folder '{top}/', which only the control API writes; "
            "choose another path",
            field,
        )
    return relative


def safe_filename(filename: str | None) -> str:
    name = (filename or "file").replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_FILENAME.sub("_", name).strip("._") or "file"
    return name[:MAX_SEGMENT_LENGTH]


def sniff_image_type(data: bytes) -> str | None:
    """Return the content type of a PNG, JPEG, GIF or WebP image, or None for anything else."""
    for signature, content_type in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class FilePage:
    items: list[StoredFile]
    page: int
    per_page: int
    has_more: bool


class FileService:
    """Files of one tenant: metadata rows in the database, bytes in `storage`."""

    def __init__(self, storage, tenant: str) -> None:
        self.storage = storage
        self.tenant = tenant
        self.prefix = storage_prefix(tenant)

    def full_key(self, path: str) -> str:
        return self.prefix + check_relative_path(path)

    def relative_path(self, key: str) -> str:
        return key[len(self.prefix):] if key.startswith(self.prefix) else key

    async def used_bytes(self, db: AsyncSession) -> int:
        total = (await db.execute(select(func.coalesce(func.sum(StoredFile.size_bytes), 0)))).scalar_one()
        return int(total)

    async def upload(
        self,
        db: AsyncSession,
        data: bytes,
        filename: str | None,
        content_type: str | None,
        path: str | None,
        limit_mib: int | None,
        uploaded_by: uuid.UUID | None,
        images_only: bool = False,
        field: str = "file",
    ) -> StoredFile:
        """Check the limit, write the bytes and record the file, in the request's transaction.

        `field` names the form field in error messages.
        """
        name = safe_filename(filename)
        sniffed = sniff_image_type(data)
        if images_only and sniffed is None:
            raise AppError(
                415, "unsupported_media_type", f"{field}: must be a PNG, JPEG, GIF or WebP image (SVG is not accepted)",
                field,
            )
        content_type = sniffed or _declared_type(content_type, name)
        relative = check_user_path(path) if path else f"files/{uuid.uuid4().hex}/{name}"
        key = self.prefix + relative

        await db.execute(
            select(func.pg_advisory_xact_lock(func.hashtext("livery.files:" + func.current_setting("livery.tenant"))))
        )
        if limit_mib is not None:
            used = await self.used_bytes(db)
            limit = limit_mib * MIB
            if used + len(data) > limit:
                raise AppError(
                    413,
                    "storage_limit_reached",
                    f"{field}: storage limit reached: {used} of {limit} bytes ({limit_mib} MiB) used, "
                    f"and this file needs {len(data)} bytes",
                    field,
                )
        existing = (await db.execute(select(StoredFile).where(StoredFile.key == key))).scalar_one_or_none()
        if existing is not None:
            raise AppError(409, "conflict", f"path: a file already exists at {relative!r}", "path")

        await run_in_threadpool(self.storage.put_bytes, key, data, content_type)
        stored = StoredFile(
            key=key,
            filename=name,
            content_type=content_type,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=uploaded_by,
        )
        db.add(stored)
        try:
            await db.flush()
        except Exception:
            await run_in_threadpool(self._delete_quietly, key)
            raise
        return stored

    def _delete_quietly(self, key: str) -> None:
        try:
            self.storage.delete(key)
        except Exception as exc:  # noqa: BLE001 - cleanup after a failed insert must not hide the first error
            logger.warning("tenant %s: could not remove orphaned object %s: %s", self.tenant, key, exc)

    async def list(self, db: AsyncSession, page: int, per_page: int, path_prefix: str | None) -> FilePage:
        statement = select(StoredFile).where(StoredFile.tenant_id == CURRENT_TENANT)
        if path_prefix:
            check_relative_path(path_prefix.rstrip("/") or path_prefix, "prefix")
            escaped = (self.prefix + path_prefix).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(StoredFile.key.like(escaped + "%", escape="\\"))
        statement = statement.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
        rows = list((await db.execute(statement.offset((page - 1) * per_page).limit(per_page + 1))).scalars())
        return FilePage(items=rows[:per_page], page=page, per_page=per_page, has_more=len(rows) > per_page)

    async def get(self, db: AsyncSession, file_id: str) -> StoredFile | None:
        parsed = parse_id(file_id)
        return None if parsed is None else await db.get(StoredFile, parsed)

    async def get_by_path(self, db: AsyncSession, path: str) -> StoredFile | None:
        key = self.full_key(path)
        return (await db.execute(select(StoredFile).where(StoredFile.key == key))).scalar_one_or_none()

    async def delete(self, db: AsyncSession, stored: StoredFile) -> None:
        await db.delete(stored)
        await db.flush()
        await run_in_threadpool(self.storage.delete, stored.key)

    async def delete_by_key(self, db: AsyncSession, key: str) -> None:
        """Delete the file stored under the full `key`, if this tenant has one (a product image, say)."""
        stored = (await db.execute(select(StoredFile).where(StoredFile.key == key))).scalar_one_or_none()
        if stored is not None:
            await self.delete(db, stored)

    async def download_url(self, stored: StoredFile) -> str:
        return await self.storage_url(stored.key)

    async def storage_url(self, key: str) -> str:
        """Return a presigned URL for `key`, valid for DOWNLOAD_LINK_SECONDS."""
        return await run_in_threadpool(self.storage.presigned_url, key, DOWNLOAD_LINK_SECONDS)


def _declared_type(content_type: str | None, filename: str) -> str:
    guessed = mimetypes.guess_type(filename)[0]
    declared = (content_type or "").split(";")[0].strip().lower()
    # HTML, SVG and XML are stored as plain bytes so a download can never render as a page in the app's origin.
    chosen = declared or guessed or "application/octet-stream"
    if chosen in ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml"):
        return "application/octet-stream"
    return chosen
