"""The JSON API under /api/v1: products, users and invitations, files and API keys.

Every id that is malformed, missing or another tenant's gets the same 404,
so a caller cannot tell them apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from sqlalchemy import select, update

from ..auth import generate_api_key
from ..catalogue import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    create_product,
    delete_product,
    get_product,
    list_products,
    update_product,
)
from ..db.models import ApiKey, Product, StoredFile
from ..deps import ApiUser, Config, Db
from ..errors import AppError, not_found
from ..schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    DownloadLink,
    FileList,
    FilePublic,
    InvitationCreate,
    InvitationCreated,
    InvitationPublic,
    ProductCreate,
    ProductList,
    ProductPublic,
    ProductUpdate,
    UserList,
    UserPublic,
    UserUpdate,
)
from ..team import (
    check_may_manage,
    count_users,
    create_invitation,
    get_user,
    list_pending_invitations,
    list_users,
    revoke_invitation,
)
from .uploads import MAX_UPLOAD_BYTES, read_upload

router = APIRouter(prefix="/api/v1")
Page = Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, alias="perPage", description="Items a page.")]


async def delete_product_with_image(request: Request, db: Db, product_id: str) -> None:
    """Delete a product and its image file, or raise the usual 404."""
    product = await get_product(db, product_id)
    if product is None:
        raise not_found("product")
    image_key = product.image_key
    await delete_product(db, product)
    if image_key is not None:
        await request.app.state.files.delete_by_key(db, image_key)


def product_public(product: Product) -> ProductPublic:
    return ProductPublic(
        id=product.id,
        name=product.name,
        description=product.description,
        price=str(product.price),
        currency=product.currency,
        has_image=product.image_key is not None,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


# Products


@router.get("/products", response_model=ProductList, tags=["products"])
async def list_products_route(
    db: Db, identity: ApiUser, q: Annotated[str | None, Query(max_length=200)] = None,
    page: Page = 1, per_page: PerPage = DEFAULT_PAGE_SIZE,
) -> ProductList:
    """List products, newest first; `q` searches name and description."""
    result = await list_products(db, q, page, per_page)
    return ProductList(
        items=[product_public(item) for item in result.items], page=page, per_page=per_page, has_more=result.has_more
    )


@router.post("/products", response_model=ProductPublic, status_code=201, tags=["products"])
async def create_product_route(body: ProductCreate, db: Db, identity: ApiUser) -> ProductPublic:
    """Add a product to the catalogue."""
    product = await create_product(db, body.name, body.description, body.price, body.currency)
    return product_public(product)


@router.get("/products/{product_id}", response_model=ProductPublic, tags=["products"])
async def get_product_route(product_id: str, db: Db, identity: ApiUser) -> ProductPublic:
    product = await get_product(db, product_id)
    if product is None:
        raise not_found("product")
    return product_public(product)


@router.patch("/products/{product_id}", response_model=ProductPublic, tags=["products"])
async def update_product_route(product_id: str, body: ProductUpdate, db: Db, identity: ApiUser) -> ProductPublic:
    product = await get_product(db, product_id)
    if product is None:
        raise not_found("product")
    product = await update_product(db, product, body.model_dump(exclude_unset=True))
    return product_public(product)


@router.delete("/products/{product_id}", status_code=204, tags=["products"])
async def delete_product_route(product_id: str, request: Request, db: Db, identity: ApiUser) -> Response:
    await delete_product_with_image(request, db, product_id)
    return Response(status_code=204)


@router.put("/products/{product_id}/image", response_model=ProductPublic, tags=["products"])
async def put_product_image_route(
    product_id: str, request: Request, db: Db, identity: ApiUser, config: Config,
    image: Annotated[UploadFile, File(description="PNG, JPEG, GIF or WebP image; SVG is rejected.")],
) -> ProductPublic:
    """Set or replace a product's image; it counts against the plan's storage limit."""
    product = await get_product(db, product_id)
    if product is None:
        raise not_found("product")
    data = await read_upload(image, "image")
    service = request.app.state.files
    stored = await service.upload(
        db, data, image.filename, image.content_type, None, config.config.limits.storage_mi_b, identity.user.id,
        images_only=True, field="image",
    )
    previous_key = product.image_key
    product = await update_product(db, product, {"image_key": stored.key})
    if previous_key is not None:
        await service.delete_by_key(db, previous_key)
    request.app.state.usage.record("storage_bytes", await service.used_bytes(db))
    return product_public(product)


# Users and invitations


@router.get("/users", response_model=UserList, tags=["users"])
async def list_users_route(db: Db, identity: ApiUser, config: Config) -> UserList:
    identity.require("users:read")
    users = await list_users(db)
    return UserList(
        items=[UserPublic.model_validate(user) for user in users], total=len(users), limit=config.config.limits.users
    )


# Declared before /users/{user_id}, which would otherwise match "invitations" as an id.
@router.get("/users/invitations", response_model=list[InvitationPublic], tags=["users"])
async def list_invitations_route(db: Db, identity: ApiUser) -> list[InvitationPublic]:
    """List pending invitations, newest first; each takes a seat of the plan's user limit until it ends."""
    identity.require("users:write")
    return [InvitationPublic.model_validate(item) for item in await list_pending_invitations(db)]


@router.delete("/users/invitations/{invitation_id}", status_code=204, tags=["users"])
async def revoke_invitation_route(invitation_id: str, db: Db, identity: ApiUser) -> Response:
    """Revoke a pending invitation: its link stops working and its seat is free."""
    identity.require("users:write")
    if not await revoke_invitation(db, invitation_id):
        raise not_found("invitation")
    return Response(status_code=204)


@router.get("/users/{user_id}", response_model=UserPublic, tags=["users"])
async def get_user_route(user_id: str, db: Db, identity: ApiUser) -> UserPublic:
    identity.require("users:read")
    user = await get_user(db, user_id)
    if user is None:
        raise not_found("user")
    return UserPublic.model_validate(user)


@router.patch("/users/{user_id}", response_model=UserPublic, tags=["users"])
async def update_user_route(user_id: str, body: UserUpdate, db: Db, identity: ApiUser) -> UserPublic:
    identity.require("users:write")
    user = await get_user(db, user_id)
    if user is None:
        raise not_found("user")
    changes = body.model_dump(exclude_unset=True)
    check_may_manage(identity.user, user, changes.get("role"))
    for name, value in changes.items():
        setattr(user, name, value)
    await db.flush()
    return UserPublic.model_validate(user)


@router.delete("/users/{user_id}", status_code=204, tags=["users"])
async def delete_user_route(user_id: str, request: Request, db: Db, identity: ApiUser) -> Response:
    identity.require("users:delete")
    user = await get_user(db, user_id)
    if user is None:
        raise not_found("user")
    if user.role == "owner":
        raise AppError(409, "conflict", "user: the owner cannot be deleted", "user")
    check_may_manage(identity.user, user)
    await db.delete(user)
    await db.flush()
    request.app.state.usage.record("users", await count_users(db))
    return Response(status_code=204)


@router.post("/users/invitations", response_model=InvitationCreated, status_code=201, tags=["users"])
async def invite_user_route(
    body: InvitationCreate, request: Request, db: Db, identity: ApiUser, config: Config
) -> InvitationCreated:
    """Invite a person by email; refused past the plan's user limit. The accept link is shown once."""
    identity.require("users:write")
    invitation, token = await create_invitation(db, body.email, body.role, identity.user.id, config.config.limits.users)
    return InvitationCreated(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        expires_at=invitation.expires_at,
        accept_url=str(request.url_for("accept_invitation_page", token=token)),
    )


# Files


def _file_public(request: Request, stored: StoredFile) -> FilePublic:
    service = request.app.state.files
    return FilePublic(
        id=stored.id,
        key=service.relative_path(stored.key),
        filename=stored.filename,
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        created_at=stored.created_at,
    )


@router.get("/files", response_model=FileList, tags=["files"])
async def list_files_route(
    request: Request, db: Db, identity: ApiUser, config: Config,
    prefix: Annotated[str | None, Query(max_length=512)] = None, page: Page = 1, per_page: PerPage = DEFAULT_PAGE_SIZE,
) -> FileList:
    service = request.app.state.files
    result = await service.list(db, page, per_page, prefix)
    limit_mib = config.config.limits.storage_mi_b
    return FileList(
        items=[_file_public(request, item) for item in result.items],
        page=page,
        per_page=per_page,
        has_more=result.has_more,
        used_bytes=await service.used_bytes(db),
        limit_bytes=None if limit_mib is None else limit_mib * 1024 * 1024,
    )


@router.post("/files", response_model=FilePublic, status_code=201, tags=["files"])
async def upload_file_route(
    request: Request, db: Db, identity: ApiUser, config: Config,
    file: Annotated[UploadFile, File(description=f"The file, at most {MAX_UPLOAD_BYTES} bytes.")],
    path: Annotated[str | None, Form(max_length=512, description="Path under the tenant's prefix; default a new unique path.")] = None,
) -> FilePublic:
    """Upload a file; refused with 413 when it would pass the plan's storage limit."""
    data = await read_upload(file)
    service = request.app.state.files
    stored = await service.upload(
        db, data, file.filename, file.content_type, path, config.config.limits.storage_mi_b, identity.user.id
    )
    request.app.state.usage.record("storage_bytes", await service.used_bytes(db))
    return _file_public(request, stored)


@router.get("/files/{file_id}", response_model=FilePublic, tags=["files"])
async def get_file_route(file_id: str, request: Request, db: Db, identity: ApiUser) -> FilePublic:
    stored = await request.app.state.files.get(db, file_id)
    if stored is None:
        raise not_found("file")
    return _file_public(request, stored)


@router.get("/files/{file_id}/download", response_model=DownloadLink, tags=["files"])
async def download_file_route(file_id: str, request: Request, db: Db, identity: ApiUser) -> DownloadLink:
    """Return a short-lived presigned URL for the file's bytes."""
    service = request.app.state.files
    stored = await service.get(db, file_id)
    if stored is None:
        raise not_found("file")
    url = await service.download_url(stored)
    return DownloadLink(url=str(request.base_url.replace(path=url)) if url.startswith("/") else url,
                        expires_in_seconds=300)


@router.get("/files-by-path", response_model=FilePublic, tags=["files"])
async def get_file_by_path_route(
    request: Request, db: Db, identity: ApiUser, path: Annotated[str, Query(max_length=512)]
) -> FilePublic:
    """Look a file up by its path under the tenant's prefix; paths that leave the prefix get 400."""
    stored = await request.app.state.files.get_by_path(db, path)
    if stored is None:
        raise not_found("file")
    return _file_public(request, stored)


@router.delete("/files/{file_id}", status_code=204, tags=["files"])
async def delete_file_route(file_id: str, request: Request, db: Db, identity: ApiUser) -> Response:
    service = request.app.state.files
    stored = await service.get(db, file_id)
    if stored is None:
        raise not_found("file")
    await service.delete(db, stored)
    request.app.state.usage.record("storage_bytes", await service.used_bytes(db))
    return Response(status_code=204)


# API keys


@router.get("/api-keys", response_model=list[ApiKeyPublic], tags=["api keys"])
async def list_api_keys_route(db: Db, identity: ApiUser) -> list[ApiKeyPublic]:
    """List the caller's own API keys that are not revoked."""
    statement = (
        select(ApiKey)
        .where(ApiKey.user_id == identity.user.id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return [ApiKeyPublic.model_validate(key) for key in (await db.execute(statement)).scalars()]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, tags=["api keys"])
async def create_api_key_route(body: ApiKeyCreate, db: Db, identity: ApiUser) -> ApiKeyCreated:
    """Create an API key for the caller. The key is in this response only; the app stores its hash."""
    new_key = generate_api_key()
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = datetime.now(timezone.utc) + timedelta(days=body.expires_in_days)
    api_key = ApiKey(
        user_id=identity.user.id, name=body.name, prefix=new_key.key_id, key_hash=new_key.key_hash, expires_at=expires_at
    )
    db.add(api_key)
    await db.flush()
    await db.refresh(api_key)
    return ApiKeyCreated(**ApiKeyPublic.model_validate(api_key).model_dump(), key=new_key.token)


@router.delete("/api-keys/{key_id}", status_code=204, tags=["api keys"])
async def revoke_api_key_route(key_id: str, db: Db, identity: ApiUser) -> Response:
    from ..catalogue import parse_id

    parsed = parse_id(key_id)
    result = None
    if parsed is not None:
        result = await db.execute(
            update(ApiKey)
            .where(ApiKey.id == parsed, ApiKey.user_id == identity.user.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(timezone.utc))
        )
    if result is None or result.rowcount == 0:
        raise not_found("API key")
    return Response(status_code=204)
