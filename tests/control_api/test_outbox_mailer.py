"""The development mailer writes whole messages, links included, to owner-only files."""

from __future__ import annotations

import email
import stat

import pytest

from livery_control_api.context import OutboxMailer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_outbox_mailer_writes_link(tmp_path):
    mailer = OutboxMailer(tmp_path / "mail")

    await mailer.send("new@example.com", "Join acme", "Open http://127.0.0.1:8000/invitations/accept?token=abc to join.")

    [path] = list((tmp_path / "mail").iterdir())
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "new@example.com"
    assert message["Subject"] == "Join acme"
    assert "/invitations/accept?token=abc" in message.get_payload(decode=True).decode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
