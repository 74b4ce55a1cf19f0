"""Base classes for resource models: camelCase field names, strict types, no unknown fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "livery.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class SpecModel(BaseModel):
    """A part of a resource: camelCase keys, strict JSON types, unknown keys rejected.

    Strict mode matches the API server: `"3"` is not an integer and `1` is not a boolean.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_unset(cls, data: Any) -> Any:
        # The API server prunes `null` from fields that are not nullable before it
        # validates, so `suspended: null` means "use the default" there too.
        # A JSON number with no fraction (`5.0`) is an integer to the API server too.
        if isinstance(data, dict):
            return {
                key: int(value) if isinstance(value, float) and value.is_integer() else value
                for key, value in data.items()
                if value is not None
            }
        return data

    def to_json(self) -> dict[str, Any]:
        """Return the manifest form: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(BaseModel):
    """The Kubernetes object metadata that Livery reads. Other keys are kept as they are."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    name: str
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    finalizers: list[str] | None = None
