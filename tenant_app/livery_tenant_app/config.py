"""Load the tenant config file and notice when it changes.

The reconciler rewrites the file (on Kubernetes, the kubelet swaps the
ConfigMap volume's symlink) whenever the Tenant or its Plan changes. The
watcher checks the file's size, mtime and inode at most every
`poll_seconds` and re-reads it only when they change and its checksum differs,
so a branding change reaches the running app within seconds with no restart.

A config that fails validation does not replace the one in force. A bad
optional value (a branding field or a feature switch) is dropped with a warning,
so its default applies. A bad required field keeps the previous config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from livery.models.config import TenantConfig

from .branding import Theme, build_theme

logger = logging.getLogger(__name__)

# Top-level keys whose bad value is dropped so that the model default applies.
OPTIONAL_SECTIONS = ("branding", "features")
OPTIONAL_KEYS = ("owner", "suspended", "generation")
MAX_REPAIR_ROUNDS = 20


class ConfigError(Exception):
    """The tenant config file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config, its theme and the checksum of the file it came from."""

    config: TenantConfig
    theme: Theme
    checksum: str

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(self.config.hosts)


def parse_config(raw: bytes) -> TenantConfig:
    """Validate a config document, dropping bad optional values; raise ConfigError for the rest."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tenant config is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("tenant config must be a JSON object")

    for _ in range(MAX_REPAIR_ROUNDS):
        try:
            return TenantConfig.model_validate(data)
        except ValidationError as exc:
            if not _drop_bad_optional_values(data, exc):
                problems = "; ".join(
                    ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
                    for error in exc.errors(include_url=False)
                )
                raise ConfigError(f"tenant config is invalid: {problems}") from None
    raise ConfigError("tenant config is invalid: too many bad values")


def _drop_bad_optional_values(data: dict[str, Any], exc: ValidationError) -> bool:
    dropped = False
    for error in exc.errors(include_url=False):
        location = error["loc"]
        if not location:
            return False
        section = location[0]
        values = data.get(section)
        if section in OPTIONAL_SECTIONS and len(location) >= 2 and isinstance(values, dict) and location[1] in values:
            values.pop(location[1])
            logger.warning("tenant config: %s.%s is invalid (%s), using the default", section, location[1], error["msg"])
            dropped = True
        elif section in OPTIONAL_SECTIONS + OPTIONAL_KEYS and section in data:
            data.pop(section)
            logger.warning("tenant config: %s is invalid (%s), using the default", section, error["msg"])
            dropped = True
        else:
            return False
    return dropped


class ConfigWatcher:
    """Hands out the current tenant config, re-reading the file when it changes."""

    def __init__(self, path: Path, poll_seconds: float = 2.0, clock=time.monotonic) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._signature: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._loaded = self._load()

    def current(self) -> LoadedConfig:
        """Return the config in force, checking the file first when the poll interval has passed."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.poll_seconds
            self._refresh()
        return self._loaded

    def expire(self) -> None:
        """Make the next `current()` call check the file, whatever the poll interval."""
        self._next_check = 0.0

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            logger.warning("tenant config %s cannot be read (%s); keeping the config in force", self.path, exc)
            return
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return
        try:
            self._loaded = self._load()
        except ConfigError as exc:
            logger.error("%s; keeping the config in force", exc)

    def _load(self) -> LoadedConfig:
        try:
            stat = os.stat(self.path)
            raw = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"tenant config {self.path} cannot be read: {exc.strerror}") from None
        self._signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        checksum = hashlib.sha256(raw).hexdigest()
        previous = getattr(self, "_loaded", None)
        if previous is not None and previous.checksum == checksum:
            return previous
        config = parse_config(raw)
        if previous is not None:
            logger.info("tenant %s: config reloaded (generation %s)", config.tenant, config.generation)
        return LoadedConfig(config=config, theme=build_theme(config), checksum=checksum)
