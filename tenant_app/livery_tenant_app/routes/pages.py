"""Server-rendered pages: home, storefront, catalogue, files, team and API keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select, update

from ..auth import generate_api_key
from ..catalogue import DEFAULT_PAGE_SIZE, create_product, get_product, list_products, parse_id
from ..db.models import ApiKey
from ..deps import Config, CsrfChecked, Db, MaybePageUser, PageUser
from ..errors import AppError, not_found
from ..rendering import render
from ..schemas import InvitationCreate, ProductCreate
from ..team import (
    check_may_manage,
    create_invitation,
    create_password_reset,
    get_user,
    list_pending_invitations,
    list_users,
    revoke_invitation,
)
from .api import delete_product_with_image
from .uploads import read_upload

router = APIRouter(include_in_schema=False)
STORE_PAGE_SIZE = 24


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _validation_message(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    return field, f"{field}: {error['msg']}"


@router.get("/", name="home")
async def home_page(request: Request, user: MaybePageUser) -> Response:
    return render(request, "home.html")


@router.get("/store", name="storefront")
async def storefront_page(
    request: Request, db: Db, user: MaybePageUser,
    q: Annotated[str | None, Query(max_length=200)] = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Render the public, branded catalogue."""
    result = await list_products(db, q, page, STORE_PAGE_SIZE)
    return render(request, "store.html", {"products": result, "q": q or ""})


@router.get("/store/products/{product_id}/image", name="product_image")
async def product_image(product_id: str, request: Request, db: Db) -> Response:
    """Redirect to a short-lived link for a product's image; public like the storefront."""
    product = await get_product(db, product_id)
    if product is None or product.image_key is None:
        raise not_found("image")
    url = await request.app.state.files.storage_url(product.image_key)
    return RedirectResponse(url, status_code=302, headers={"cache-control": "private, max-age=60"})


# Catalogue management


@router.get("/products", name="products")
async def products_page(
    request: Request, db: Db, identity: PageUser,
    q: Annotated[str | None, Query(max_length=200)] = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    result = await list_products(db, q, page, DEFAULT_PAGE_SIZE)
    return render(request, "products.html", {"products": result, "q": q or ""})


@router.post("/products", dependencies=[CsrfChecked])
async def create_product_form(
    request: Request, db: Db, identity: PageUser, config: Config,
    name: Annotated[str, Form()], price: Annotated[str, Form()], currency: Annotated[str, Form()] = "EUR",
    description: Annotated[str, Form()] = "", image: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        body = ProductCreate(name=name, description=description, price=_decimal(price), currency=currency.upper())
    except ValidationError as exc:
        field, message = _validation_message(exc)
        raise AppError(422, "invalid", message, field) from None
    image_key = None
    if image is not None and image.filename:
        data = await read_upload(image, "image")
        stored = await request.app.state.files.upload(
            db, data, image.filename, image.content_type, None, config.config.limits.storage_mi_b, identity.user.id,
            images_only=True, field="image",
        )
        image_key = stored.key
    await create_product(db, body.name, body.description, body.price, body.currency, image_key)
    return see_other("/products")


def _decimal(value: str) -> Decimal | str:
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        return value


@router.post("/products/{product_id}/delete", dependencies=[CsrfChecked])
async def delete_product_form(product_id: str, request: Request, db: Db, identity: PageUser) -> Response:
    await delete_product_with_image(request, db, product_id)
    return see_other("/products")


# Files


@router.get("/files", name="files")
async def files_page(request: Request, db: Db, identity: PageUser, config: Config,
                     page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    service = request.app.state.files
    result = await service.list(db, page, DEFAULT_PAGE_SIZE, None)
    used = await service.used_bytes(db)
    return render(request, "files.html", {"files": result, "used_bytes": used, "limit_mib": config.config.limits.storage_mi_b})


@router.post("/files", dependencies=[CsrfChecked])
async def upload_file_form(request: Request, db: Db, identity: PageUser, config: Config,
                           file: Annotated[UploadFile, File()]) -> Response:
    data = await read_upload(file)
    service = request.app.state.files
    await service.upload(db, data, file.filename, file.content_type, None, config.config.limits.storage_mi_b,
                         identity.user.id)
    request.app.state.usage.record("storage_bytes", await service.used_bytes(db))
    return see_other("/files")


@router.get("/files/{file_id}/download")
async def download_file_page(file_id: str, request: Request, db: Db, identity: PageUser) -> Response:
    service = request.app.state.files
    stored = await service.get(db, file_id)
    if stored is None:
        raise not_found("file")
    return RedirectResponse(await service.download_url(stored), status_code=303)


# Team


@router.get("/team", name="team")
async def team_page(request: Request, db: Db, identity: PageUser, config: Config) -> Response:
    identity.require("users:read")
    users = await list_users(db)
    can_invite = identity.user.role in ("owner", "admin")
    invitations = await list_pending_invitations(db) if can_invite else []
    return render(request, "team.html", {"users": users, "limit": config.config.limits.users,
                                          "can_invite": can_invite, "invitations": invitations,
                                          "is_owner": identity.user.role == "owner"})


@router.post("/team/invite", dependencies=[CsrfChecked])
async def invite_form(
    request: Request, db: Db, identity: PageUser, config: Config,
    email: Annotated[str, Form()], role: Annotated[str, Form()] = "member",
) -> Response:
    identity.require("users:write")
    try:
        body = InvitationCreate(email=email, role=role)
    except ValidationError as exc:
        field, message = _validation_message(exc)
        raise AppError(422, "invalid", message, field) from None
    invitation, token = await create_invitation(db, body.email, body.role, identity.user.id, config.config.limits.users)
    link = str(request.url_for("accept_invitation_page", token=token))
    return render(request, "shown_once.html", {"title": f"Invitation for {invitation.email}", "secret": link,
                                               "note": "Send this link to the person you invited. It works once and expires in 7 days."})


@router.post("/team/invitations/{invitation_id}/revoke", dependencies=[CsrfChecked])
async def revoke_invitation_form(invitation_id: str, db: Db, identity: PageUser) -> Response:
    identity.require("users:write")
    if not await revoke_invitation(db, invitation_id):
        raise not_found("invitation")
    return see_other("/team")


@router.post("/team/{user_id}/reset-link", dependencies=[CsrfChecked])
async def reset_link_form(user_id: str, request: Request, db: Db, identity: PageUser) -> Response:
    identity.require("users:write")
    user = await get_user(db, user_id)
    if user is None:
        raise not_found("user")
    check_may_manage(identity.user, user)
    token = await create_password_reset(db, user)
    link = str(request.url_for("password_reset_page", token=token))
    return render(request, "shown_once.html", {"title": f"Password reset link for {user.email}", "secret": link,
                                               "note": "The link works once and expires in one hour."})


# API keys


@router.get("/api-keys", name="api_keys")
async def api_keys_page(request: Request, db: Db, identity: PageUser) -> Response:
    statement = select(ApiKey).where(ApiKey.user_id == identity.user.id, ApiKey.revoked_at.is_(None)).order_by(
        ApiKey.created_at.desc()
    )
    keys = list((await db.execute(statement)).scalars())
    return render(request, "api_keys.html", {"keys": keys})


@router.post("/api-keys", dependencies=[CsrfChecked])
async def create_api_key_form(request: Request, db: Db, identity: PageUser, name: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:
    new_key = generate_api_key()
    db.add(ApiKey(user_id=identity.user.id, name=name.strip() or "key", prefix=new_key.key_id, key_hash=new_key.key_hash,
                  expires_at=datetime.now(timezone.utc) + timedelta(days=90)))
    await db.flush()
    return render(request, "shown_once.html", {"title": f"API key {name}", "secret": new_key.token,
                                               "note": "Copy the key now: it is not shown again. It expires in 90 days."})


@router.post("/api-keys/{key_id}/revoke", dependencies=[CsrfChecked])
async def revoke_api_key_form(key_id: str, db: Db, identity: PageUser) -> Response:
    parsed = parse_id(key_id)
    if parsed is not None:
        await db.execute(update(ApiKey).where(ApiKey.id == parsed, ApiKey.user_id == identity.user.id)
                         .values(revoked_at=datetime.now(timezone.utc)))
    return see_other("/api-keys")
