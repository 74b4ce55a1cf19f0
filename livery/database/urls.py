"""Build connection URLs and libpq parameters from the admin URL without exposing its password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from .errors import DatabaseError

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def parse_admin_url(url: str) -> URL:
    """Parse a PostgreSQL URL, accepting libpq's and SQLAlchemy's spellings of the scheme."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(
            "the tenant database admin URL is not a valid URL", temporary=False, reason="InvalidDatabaseURL"
        ) from None
    if parsed.drivername not in POSTGRES_SCHEMES:
        raise DatabaseError(
            f"the tenant database admin URL must start with postgresql://, got {parsed.drivername}://",
            temporary=False,
            reason="InvalidDatabaseURL",
        )
    return parsed.set(drivername="postgresql")


def render(url: URL) -> str:
    """Return `url` as a libpq connection URI, password included."""
    return url.render_as_string(hide_password=False)


def describe(url: URL) -> str:
    """Return `url` with its password masked, for messages."""
    return url.render_as_string(hide_password=True)


def libpq_parameters(url: URL) -> tuple[str, dict[str, str]]:
    """Return a URI without the password and the environment variables that carry the password.

    Child processes such as pg_dump get the password through `PGPASSWORD`, so it
    never appears in their command line, which other local users can read.
    """
    environment = {}
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    return url.set(password=None).render_as_string(hide_password=False), environment
