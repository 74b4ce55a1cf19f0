"""Build connection URLs and libpq parameters from the admin URL without exposing its password."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from sqlalchemy.engine import URL, make_url

from .errors import DatabaseError

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
# libpq query parameters that carry a secret. An admin URL with one is rejected, because
# query parameters are not masked like the user info's password.
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
# libpq query parameters that say where and how to reach the server, which tenant app URLs
# and messages keep. Every other one (options, sslcert, sslkey, passfile, ...) is the admin's.
SERVER_PARAMETERS = frozenset({"host", "hostaddr", "port", "sslmode", "connect_timeout", "target_session_attrs"})


def secret_parameters(url: str) -> list[str]:
    """Return the names of the query parameters of `url` that carry a secret, such as `password`."""
    query = urlsplit(url).query
    return sorted({key for key, _ in parse_qsl(query, keep_blank_values=True) if key.lower() in SECRET_PARAMETERS})


def parse_admin_url(url: str) -> URL:
    """Parse a PostgreSQL URL, accepting libpq's and SQLAlchemy's spellings of the scheme."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(
            "the tenant database admin URL is not a valid URL", temporary=False, reason="InvalidDatabaseURL"
        ) from None
    secrets = sorted(key for key in parsed.query if key.lower() in SECRET_PARAMETERS)
    if secrets:
        raise DatabaseError(
            f"the tenant database admin URL must not carry a secret in its query string (parameter "
            f"{', '.join(secrets)}); put the password in the user info: postgresql://user:password@host/database",
            temporary=False,
            reason="InvalidDatabaseURL",
        )
    if parsed.drivername not in POSTGRES_SCHEMES:
        raise DatabaseError(
            f"the tenant database admin URL must start with postgresql://, got {parsed.drivername}://",
            temporary=False,
            reason="InvalidDatabaseURL",
        )
    return parsed.set(drivername="postgresql")


def render(url: URL, *, hide_password: bool = False) -> str:
    """Return `url` as a libpq connection URI, password included unless `hide_password`.

    libpq percent-decodes every part of a URI and reads `+` as a plus sign, so
    each part is percent-encoded with `%20` for a space. SQLAlchemy's
    `render_as_string` (2.1) writes a query space as `+` and leaves spaces in the
    user info and database name as they are, which libpq reads wrongly or rejects.
    """
    authority = ""
    if url.username is not None:
        authority = _quote(url.username)
        if url.password is not None:
            authority += ":" + ("***" if hide_password else _quote(str(url.password)))
        authority += "@"
    if url.host is not None:
        authority += f"[{url.host}]" if ":" in url.host else _quote(url.host)
    if url.port is not None:
        authority += f":{url.port}"
    uri = f"{url.drivername}://{authority}"
    if url.database is not None:
        uri += "/" + _quote(url.database)
    if url.query:
        uri += "?" + urlencode(sorted(url.query.items()), doseq=True, quote_via=quote)
    return uri


def _quote(part: str) -> str:
    return quote(part, safe="")


def describe(url: URL) -> str:
    """Return `url` with its password masked and only the server parameters of its query, for messages."""
    return render(server_only(url), hide_password=True)


def server_only(url: URL) -> URL:
    """Return `url` without the query parameters that are not in `SERVER_PARAMETERS`."""
    return url.set(query={key: value for key, value in url.query.items() if key in SERVER_PARAMETERS})


def tenant_url(admin: URL, role: str, password: str, database: str) -> str:
    """Return the URL a tenant app connects with: the admin URL's server, the tenant's role and password."""
    return render(server_only(admin).set(username=role, password=password, database=database))


def libpq_parameters(url: URL) -> tuple[str, dict[str, str]]:
    """Return a URI without the password and the environment variables that carry the password.

    Child processes such as pg_dump get the password through `PGPASSWORD`, so it
    never appears in their command line, which other local users can read.
    """
    environment = {}
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    # `URL.set(password=None)` keeps the password (None means "unchanged"), so the
    # namedtuple's `_replace` removes it.
    return render(url._replace(password=None)), environment
