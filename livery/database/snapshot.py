"""Dump a tenant's data with pg_dump in custom format (readable by `pg_restore`).

pg_dump refuses to dump a server newer than itself, so the first pg_dump whose
major version is at least the server's is used: the one on PATH, then the one
shipped in the `pgserver` wheel (PostgreSQL 16 in pgserver 0.1.4). Read the
archive with the pg_restore that `choose_pg_tool("pg_restore", ...)` returns.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import URL

from livery.tenant_schema import TENANT_SETTING

from .errors import SnapshotError
from .urls import libpq_parameters

SNAPSHOT_SUFFIX = ".dump"


def pg_tool_candidates(name: str) -> list[Path]:
    """Return the executables called `name` (pg_dump, pg_restore) to try, in order of preference."""
    candidates = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    try:
        import pgserver
    except ImportError:
        pass
    else:
        bundled = Path(pgserver.__file__).resolve().parent / "pginstall" / "bin" / name
        if bundled.exists():
            candidates.append(bundled)
    return candidates


@lru_cache(maxsize=8)
def tool_major_version(executable: Path) -> int | None:
    """Return the major version that `executable --version` prints, or None if it cannot be run."""
    try:
        output = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    return int(match.group(1)) if match else None


def choose_pg_tool(name: str, server_version: int) -> Path:
    """Return a `name` (pg_dump or pg_restore) of at least the major version of `server_version`.

    `server_version` is in `server_version_num` form (160004 for 16.4). An
    archive written by a newer pg_dump cannot be read by an older pg_restore,
    so callers that restore a snapshot choose pg_restore the same way.
    """
    server_major = server_version // 10000
    found = []
    for candidate in pg_tool_candidates(name):
        major = tool_major_version(candidate)
        found.append(f"{candidate} ({major})")
        if major is not None and major >= server_major:
            return candidate
    raise SnapshotError(
        f"no {name} of version {server_major} or newer found (tried: {', '.join(found) or 'none'}); "
        f"install the PostgreSQL {server_major} client tools"
    )


def choose_pg_dump(server_version: int) -> Path:
    """Return a pg_dump able to dump a server of `server_version` (as in `server_version_num`)."""
    return choose_pg_tool("pg_dump", server_version)


def archive_path(destination: Path, tenant: str) -> Path:
    """Return where to write the archive: `destination` itself, or a new file in it when it is a folder."""
    if destination.is_dir():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return destination / f"{tenant}-{stamp}{SNAPSHOT_SUFFIX}"
    return destination


async def dump_database(
    url: URL,
    *,
    server_version: int,
    tenant: str,
    destination: Path,
    schema: str | None = None,
    shared_role: str | None = None,
) -> Path:
    """Run pg_dump on the database `url` names and return the archive's path.

    `schema` limits the dump to one schema. `shared_role` dumps the shared
    tables as that tenant role with row-level security on, so the archive
    holds only the tenant's rows. The archive is written under a temporary
    name and renamed when pg_dump succeeds, so a crash never leaves a
    truncated file under the final name.
    """
    executable = choose_pg_dump(server_version)
    target = archive_path(destination, tenant)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")

    conninfo, environment = libpq_parameters(url)
    arguments = [str(executable), "--format=custom", "--no-password", f"--file={partial}", f"--dbname={conninfo}"]
    if schema is not None:
        arguments.append(f"--schema={schema}")
    if shared_role is not None:
        arguments += ["--schema=public", f"--role={shared_role}", "--enable-row-security", "--no-owner", "--no-privileges"]
        environment["PGOPTIONS"] = f"-c {TENANT_SETTING}={tenant}"

    process = await asyncio.create_subprocess_exec(
        *arguments,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **environment},
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        partial.unlink(missing_ok=True)
        message = stderr.decode(errors="replace").strip().splitlines()
        raise SnapshotError(f"pg_dump of tenant {tenant} failed with exit code {process.returncode}: {' '.join(message[-3:])}")
    partial.replace(target)
    return target
