"""API request models: normalisation and the rules that keep unstorable text out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from livery_tenant_app.schemas import InvitationCreate, ProductCreate, ProductUpdate


def test_invitation_email_is_lowercased() -> None:
    invitation = InvitationCreate.model_validate({"email": "  Mixed.Case@Acme.Example "})

    assert invitation.email == "mixed.case@acme.example"


@pytest.mark.parametrize("name", ["a\x00b", "a\ud800b"])
def test_unstorable_product_name_is_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProductCreate.model_validate({"name": name, "price": "1", "currency": "EUR"})

    assert caught.value.errors()[0]["loc"] == ("name",)


def test_patch_leaves_unsent_fields_out() -> None:
    update = ProductUpdate.model_validate({"price": "2.50"})

    assert update.model_dump(exclude_unset=True) == {"price": update.price}
