"""The state that request handlers share: settings, the resource store, billing, database, metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livery.store.base import ResourceStore

from .billing.provider import BillingProvider
from .metrics import Metrics
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
    links reach people only through a Mailer passed to `create_app`.
    """

    async def send(self, to: str, subject: str, body: str) -> None:
        logger.info("email to %s: %s (not delivered: no mailer configured)", to, subject)


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

    def __post_init__(self) -> None:
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
