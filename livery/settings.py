"""Settings shared by every program, read from `LIVERY_*` environment variables.

Each program subclasses `CommonSettings` with its own fields and builds it once
at start-up. An invalid value stops the program with a message naming the
variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .models.rules import HOSTNAME


class SettingsError(ValueError):
    """An environment variable has an invalid value."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVERY_", extra="ignore", frozen=True)

    base_domain: str = Field(
        default="localhost", description="Tenants are served at <name>.<base domain>."
    )
    database_url: SecretStr | None = Field(
        default=None, description="Control database URL; unset means the embedded PostgreSQL."
    )
    tenant_database_url: SecretStr | None = Field(
        default=None, description="Admin URL of the server with the tenant databases; unset means the control server."
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket for files; unset means a local folder.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint for MinIO and other S3 servers.")
    redis_url: SecretStr | None = Field(default=None, description="Redis for limiters and caches; unset means in-process.")
    log_level: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"

    @field_validator("base_domain")
    @classmethod
    def _base_domain_is_a_host(cls, value: str) -> str:
        if value == "localhost":
            return value
        return HOSTNAME.check(value)

    @field_validator("database_url", "tenant_database_url")
    @classmethod
    def _no_secret_in_query(cls, value: SecretStr | None) -> SecretStr | None:
        # Messages mask only the user info's password, so a password in the query string would leak.
        from .database.urls import secret_parameters

        if value is not None and (names := secret_parameters(value.get_secret_value())):
            raise ValueError(
                f"must not carry a secret in its query string (parameter {', '.join(names)}); "
                "put the password in the user info: postgresql://user:password@host/database"
            )
        return value


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build `settings_class` from the environment, or raise `SettingsError` naming each bad variable."""
    try:
        return settings_class()
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        problems = []
        for error in exc.errors(include_url=False):
            variable = prefix.upper() + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{variable}: {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


@lru_cache
def common_settings() -> CommonSettings:
    """Return the shared settings, read once."""
    return load_settings(CommonSettings)
