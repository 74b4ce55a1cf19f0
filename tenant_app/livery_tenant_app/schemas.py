"""Request and response bodies of the JSON API (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from livery.models.rules import EMAIL

Role = Literal["owner", "admin", "member"]
InvitableRole = Literal["admin", "member"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
ProductName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Price = Annotated[Decimal, Field(ge=0, lt=Decimal("10000000000"), max_digits=12, decimal_places=2)]


def normalise_email(value: str) -> str:
    """Return the address stripped and lowercased, or raise ValueError for an invalid one."""
    value = value.strip().lower()
    # NOTE: addresses are limited to printable ASCII, because Python's and PostgreSQL's lower()
    # disagree on some other characters and the users table requires lowercase emails.
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"must be an email address of printable ASCII characters, got {value[:80]!r}")
    return EMAIL.check(value)


Email = Annotated[str, AfterValidator(normalise_email)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: object) -> object:
        # PostgreSQL text cannot hold NUL, and psycopg cannot encode unpaired UTF-16 surrogates.
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
        return value


class PatchModel(ApiModel):
    """A partial update: every field is optional, but a field that is sent must not be null."""

    @field_validator("*", mode="before")
    @classmethod
    def _sent_fields_are_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class ProductCreate(ApiModel):
    name: ProductName
    description: Description = ""
    price: Price = Field(description="Decimal price with at most two decimal places, as a string or number.")
    currency: Currency = Field(description="ISO 4217 code such as EUR.")


class ProductUpdate(PatchModel):
    name: ProductName | None = None
    description: Description | None = None
    price: Price | None = None
    currency: Currency | None = None


class ProductPublic(ApiModel):
    id: uuid.UUID
    name: str
    description: str
    price: str
    currency: str
    has_image: bool
    created_at: datetime
    updated_at: datetime

    @field_validator("price", mode="before")
    @classmethod
    def _price_as_string(cls, value: object) -> str:
        return str(value)


class ProductList(ApiModel):
    items: list[ProductPublic]
    page: int
    per_page: int
    has_more: bool


class UserPublic(ApiModel):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(ApiModel):
    items: list[UserPublic]
    total: int
    limit: int | None


class UserUpdate(PatchModel):
    role: Role | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    is_active: bool | None = None


class InvitationCreate(ApiModel):
    email: Email
    role: InvitableRole = "member"


class InvitationPublic(ApiModel):
    """A pending invitation: not accepted, revoked or expired. The accept link is never shown again."""

    id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    expires_at: datetime


class InvitationCreated(ApiModel):
    id: uuid.UUID
    email: str
    role: str
    expires_at: datetime
    accept_url: str = Field(description="One-time link for the invited person; shown only in this response.")


class FilePublic(ApiModel):
    id: uuid.UUID
    key: str = Field(description="Path of the file under the tenant's storage prefix.")
    filename: str
    content_type: str
    size_bytes: int
    created_at: datetime


class FileList(ApiModel):
    items: list[FilePublic]
    page: int
    per_page: int
    has_more: bool
    used_bytes: int
    limit_bytes: int | None


class DownloadLink(ApiModel):
    url: str
    expires_in_seconds: int


class ApiKeyCreate(ApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    expires_in_days: int | None = Field(default=90, ge=1, le=3650, description="Days until the key expires; null for never.")


class ApiKeyPublic(ApiModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The API key; shown only in this response.")
