"""Connection URIs that libpq reads back exactly as they were built."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import URL, make_url

from livery.database.urls import describe, libpq_parameters, render, tenant_url

# Characters that form-encoding (`+` for a space) or a naive URI writer gets wrong.
AWKWARD_VALUE = "a b+c%d&e=f"


def parsed(uri: str) -> dict[str, str]:
    """Return the parameters libpq reads from `uri`."""
    return psycopg.conninfo.conninfo_to_dict(uri)


def test_render_encodes_query_space_as_percent_20():
    url = URL.create("postgresql", host="db.example.com", database="app", query={"application_name": AWKWARD_VALUE})

    uri = render(url)

    assert "+" not in uri.split("?", 1)[1]
    assert "%20" in uri
    assert parsed(uri)["application_name"] == AWKWARD_VALUE


def test_render_keeps_every_part_exact():
    url = URL.create(
        "postgresql",
        username="user " + AWKWARD_VALUE,
        password="pass " + AWKWARD_VALUE + "@:/?#",
        host="db.example.com",
        port=6543,
        database="db " + AWKWARD_VALUE,
        query={"options": "-c search_path=tenant_acme", "sslmode": "require"},
    )

    parameters = parsed(render(url))

    assert parameters["user"] == "user " + AWKWARD_VALUE
    assert parameters["password"] == "pass " + AWKWARD_VALUE + "@:/?#"
    assert parameters["dbname"] == "db " + AWKWARD_VALUE
    assert parameters["host"] == "db.example.com"
    assert parameters["port"] == "6543"
    assert parameters["options"] == "-c search_path=tenant_acme"
    assert parameters["sslmode"] == "require"


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://postgres@/postgres?host=%2Ftmp%2Fsocket",
        "postgresql://admin:secret@[::1]:5432/postgres",
        "postgresql://admin@10.0.0.7/postgres?sslmode=verify-full",
    ],
)
def test_render_round_trips_parsed_url(uri):
    assert parsed(render(make_url(uri))) == parsed(uri)


def test_server_reads_rendered_query_value(postgres_url):
    url = make_url(postgres_url)
    url = url.set(query={**url.query, "application_name": AWKWARD_VALUE})

    with psycopg.connect(render(url)) as connection:
        (value,) = connection.execute("SHOW application_name").fetchone()

    assert value == AWKWARD_VALUE


def test_describe_masks_password():
    url = make_url("postgresql://admin:hunter2secret@db.example.com/postgres?sslmode=require&sslkey=%2Fkeys%2Fadmin")

    text = describe(url)

    assert "hunter2secret" not in text
    assert text == "postgresql://admin:***@db.example.com/postgres?sslmode=require"


def test_tenant_url_encodes_password():
    admin = make_url("postgresql://admin:x@db.example.com:5432/postgres?sslmode=require&options=-c%20a%3Db")

    uri = tenant_url(admin, "tenant_acme", "pw " + AWKWARD_VALUE, "tenant_acme")

    assert parsed(uri) == {
        "user": "tenant_acme",
        "password": "pw " + AWKWARD_VALUE,
        "host": "db.example.com",
        "port": "5432",
        "dbname": "tenant_acme",
        "sslmode": "require",
    }


def test_libpq_parameters_move_password_to_environment():
    url = make_url("postgresql://admin:pw%20x%2By@db.example.com/postgres?application_name=a%20b")

    uri, environment = libpq_parameters(url)

    assert environment == {"PGPASSWORD": "pw x+y"}
    assert "pw" not in uri
    assert parsed(uri)["application_name"] == "a b"
