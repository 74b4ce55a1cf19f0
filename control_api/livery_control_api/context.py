"""The state that request handlers share: settings, the resource store, billing, database, metrics."""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from livery.store.base import ResourceStore

from .billing.provider import BillingProvider
from .metrics import Metrics
from .plan_cache import PlanCache
from .ratelimit import LoginLimiter, RedisLoginLimiter
from .security import PasswordHashing
from .settings import ControlApiSettings

logger = logging.getLogger("livery.control_api.mail")


class DnsResolver(Protocol):
    async def txt_records(self, name: str) -> list[str]:
        """Return the TXT strings published at `name`; an empty list when there are none."""


class DnspythonResolver:
    """Look up TXT records with dnspython's asynchronous resolver and the system's name servers."""

    async def txt_records(self, name: str) -> list[str]:
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        try:
            answer = await dns.asyncresolver.resolve(name, "TXT", lifetime=5.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.Timeout:
            logger.warning("DNS TXT lookup of %s timed out", name)
            return []
        return [b"".join(record.strings).decode(errors="replace") for record in answer]


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


class LogMailer:
    """Log that an email would go out, naming recipient and subject only; bodies carry tokens.

    NOTE: no SMTP delivery is built in yet, so verification and invitation
    links reach people only through a Mailer passed to `create_app`
    (`livery up` passes an `OutboxMailer`).
    """

    async def send(self, to: str, subject: str, body: str) -> None:
        logger.info("email to %s: %s (not delivered: no mailer configured)", to, subject)


class OutboxMailer:
    """Development mailer: write each message, link included, to a file in `folder` instead of sending it.

    `livery up` uses it, so verification and invitation links reach the
    person running the embedded runtime. Each file is readable by its owner
    only (mode 0600), because the links in it sign people in. It is never
    used with `environment` set to `production`.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["To"], message["Subject"], message["Date"] = to, subject, formatdate(localtime=False)
        message.set_content(body)
        path = self.folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}.eml"
        await run_in_threadpool(self._write, path, bytes(message))
        logger.info("development mailer: email to %s (%s) written to %s, not sent", to, subject, path)

    def _write(self, path: Path, content: bytes) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)


@dataclass
class AppContext:
    settings: ControlApiSettings
    store: ResourceStore
    billing: BillingProvider
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    dns: DnsResolver
    mailer: Mailer
    metrics: Metrics = field(default_factory=Metrics)
    limiter: LoginLimiter | RedisLoginLimiter | None = None
    passwords: PasswordHashing | None = None
    plans: PlanCache = field(init=False)

    def __post_init__(self) -> None:
        self.plans = PlanCache(self.store, self.settings.plan_cache_seconds)
        if self.limiter is None:
            limit = self.settings.login_attempts_per_minute
            redis_url = self.settings.redis_url
            self.limiter = (
                RedisLoginLimiter(redis_url.get_secret_value(), limit) if redis_url else LoginLimiter(limit)
            )
        if self.passwords is None:
            settings = self.settings
            self.passwords = PasswordHashing(
                settings.password_hash_time_cost, settings.password_hash_memory_kib, settings.password_hash_parallelism
            )
