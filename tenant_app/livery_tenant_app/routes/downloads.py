"""Downloads through the local storage backend's signed links (`/_files/<key>?expires=&signature=`).

With S3 the app hands out S3 presigned URLs and this route is never used.
A link is served only when its signature and expiry check out, its key lies
under this tenant's prefix and the tenant's database has a file row for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from livery.storage import LOCAL_URL_PREFIX, InvalidKeyError, InvalidSignatureError, ObjectNotFoundError

from ..db import StoredFile
from ..deps import Db
from ..errors import not_found
from ..files import sniff_image_type

router = APIRouter(include_in_schema=False)
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@router.get(LOCAL_URL_PREFIX + "{key:path}")
async def signed_download(
    key: str, request: Request, db: Db,
    expires: Annotated[str, Query(max_length=20)] = "", signature: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """Serve a file named by a signed link; every failure is the same 404."""
    service = request.app.state.files
    resolve = getattr(service.storage, "resolve_signed_path", None)
    if resolve is None or not key.startswith(service.prefix):
        raise not_found("file")
    try:
        path = await run_in_threadpool(resolve, key, expires, signature)
    except (InvalidKeyError, InvalidSignatureError, ObjectNotFoundError):
        raise not_found("file") from None
    stored = (await db.execute(select(StoredFile).where(StoredFile.key == key))).scalar_one_or_none()
    if stored is None:
        raise not_found("file")

    content_type = stored.content_type
    if content_type in INLINE_TYPES and sniff_image_type(path.read_bytes()[:16]) == content_type:
        disposition = "inline"
    else:
        disposition = "attachment"
    return FileResponse(
        path, media_type=content_type, filename=stored.filename, content_disposition_type=disposition,
        headers={"cache-control": "private, max-age=60", "x-content-type-options": "nosniff"},
    )
