"""Data functions for the product catalogue. Each takes the request's session; the caller commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from livery.tenant_schema import CURRENT_TENANT_SQL

from .db.models import PRODUCT_SEARCH_CONFIG, Product

# The transaction's tenant. Listing queries compare `tenant_id` with it in every mode: row-level
# security already does in shared mode, and elsewhere it lets PostgreSQL walk the
# (tenant_id, created_at, id) index in order instead of sorting the whole table.
CURRENT_TENANT = literal_column(CURRENT_TENANT_SQL)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class ProductPage:
    items: list[Product]
    page: int
    per_page: int
    has_more: bool


def parse_id(value: str) -> uuid.UUID | None:
    """Return `value` as a UUID, or None. Callers treat None exactly as a missing row."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


async def list_products(db: AsyncSession, query: str | None, page: int, per_page: int) -> ProductPage:
    """Return one page of products, newest first, matching `query` by full-text search when given."""
    statement = select(Product).where(Product.tenant_id == CURRENT_TENANT)
    if query:
        statement = statement.where(
            Product.search.bool_op("@@")(func.websearch_to_tsquery(PRODUCT_SEARCH_CONFIG, query))
        )
    statement = (
        statement.order_by(Product.created_at.desc(), Product.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    rows = list((await db.execute(statement)).scalars())
    return ProductPage(items=rows[:per_page], page=page, per_page=per_page, has_more=len(rows) > per_page)


async def get_product(db: AsyncSession, product_id: str) -> Product | None:
    parsed = parse_id(product_id)
    if parsed is None:
        return None
    return await db.get(Product, parsed)


async def create_product(
    db: AsyncSession, name: str, description: str, price: Decimal, currency: str, image_key: str | None = None
) -> Product:
    product = Product(name=name, description=description, price=price, currency=currency, image_key=image_key)
    db.add(product)
    await db.flush()
    await db.refresh(product)
    return product


async def update_product(db: AsyncSession, product: Product, changes: dict[str, object]) -> Product:
    for name, value in changes.items():
        setattr(product, name, value)
    await db.flush()
    await db.refresh(product)
    return product


async def delete_product(db: AsyncSession, product: Product) -> None:
    await db.delete(product)
    await db.flush()
