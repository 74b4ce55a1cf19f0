"""File storage for tenant files and snapshots: S3 through boto3, or a local folder.

`open_storage` returns one of two backends with the same methods. Keys are
`/`-separated paths. Every key is checked by whole path segment before any
backend call, so `..`, absolute paths, backslashes, empty segments and their
percent-encoded forms never reach S3 or the file system. Tenant files live
under `tenants/<name>/` (`livery.naming.storage_prefix`); `Storage.for_tenant`
returns a view that takes keys relative to that prefix and cannot leave it.

The S3 backend hands out presigned GET URLs. The local backend hands out
URL paths under `LOCAL_URL_PREFIX`, signed with HMAC-SHA256 and an expiry
time, for the app to serve after `LocalStorage.resolve_signed_path` accepts
them.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import os
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from .naming import storage_prefix

MAX_KEY_BYTES = 1024  # S3's limit on object key length, in UTF-8 bytes.
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600  # S3's limit for SigV4 presigned URLs.
LOCAL_URL_PREFIX = "/_files/"
SIGNING_KEY_FILE = ".livery-signing-key"
PARTIAL_FOLDER = ".livery-partial"
CONTENT_TYPE_DEFAULT = "application/octet-stream"


class StorageError(Exception):
    """A storage operation failed."""


class InvalidKeyError(StorageError, ValueError):
    """A key breaks a key rule. `key` is the rejected key and `rule` the rule it breaks."""

    def __init__(self, key: object, rule: str, field: str = "key") -> None:
        display = repr(key) if len(repr(key)) <= 200 else repr(key)[:196] + "...'"
        super().__init__(f"{field}: {rule}, got {display}")
        self.key = key
        self.rule = rule
        self.field = field


class ObjectNotFoundError(StorageError, KeyError):
    """No object is stored under the key."""

    def __str__(self) -> str:
        return f"no object stored under key {self.args[0]!r}"


class InvalidSignatureError(StorageError):
    """A signed local file URL is forged, altered or expired."""


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object: its full key, its size in bytes and when it was last written (UTC)."""

    key: str
    size_bytes: int
    last_modified: datetime


def check_key(key: object, field: str = "key") -> str:
    """Return `key` unchanged if it is a safe relative key, or raise InvalidKeyError naming the rule.

    The rules apply to the key as given and again after percent-decoding, so
    `..%2Fsecret` is rejected like `../secret`.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(key, "must be a string", field)
    if not key:
        raise InvalidKeyError(key, "must not be empty", field)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKeyError(key, f"must be at most {MAX_KEY_BYTES} bytes in UTF-8", field)
    _check_segments(key, key, field)
    decoded = key
    for _ in range(3):
        previous, decoded = decoded, unquote(decoded)
        if decoded == previous:
            break
        _check_segments(decoded, key, field, encoded=True)
    return key


def _check_segments(text: str, key: str, field: str, encoded: bool = False) -> None:
    suffix = " (after percent-decoding)" if encoded else ""
    if any(ord(character) < 32 or ord(character) == 127 for character in text):
        raise InvalidKeyError(key, f"must not contain control characters{suffix}", field)
    if "\\" in text:
        raise InvalidKeyError(key, f"must not contain backslashes{suffix}", field)
    if text.startswith("/"):
        raise InvalidKeyError(key, f"must be relative, not start with '/'{suffix}", field)
    for segment in text.split("/"):
        if segment == "":
            raise InvalidKeyError(key, f"must not contain empty path segments ('//' or a trailing '/'){suffix}", field)
        if segment in (".", ".."):
            raise InvalidKeyError(key, f"must not contain '.' or '..' path segments{suffix}", field)


def check_prefix(prefix: object, field: str = "prefix") -> str:
    """Return `prefix` ending in '/', so it matches whole path segments only; '' means every key."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidKeyError(prefix, "must be a string", field)
    check_key(prefix[:-1] if prefix.endswith("/") else prefix, field)
    return prefix if prefix.endswith("/") else prefix + "/"


def check_expiry(expires_seconds: int) -> int:
    if not isinstance(expires_seconds, int) or not 1 <= expires_seconds <= MAX_PRESIGNED_SECONDS:
        raise StorageError(
            f"expires_seconds: must be a whole number from 1 to {MAX_PRESIGNED_SECONDS}, got {expires_seconds!r}"
        )
    return expires_seconds


class Storage(abc.ABC):
    """Objects under `/`-separated keys. Every method checks its key first (see `check_key`)."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = CONTENT_TYPE_DEFAULT) -> None:
        """Store `data` under `key`, replacing any object there."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key`, replacing any object there."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes, or raise ObjectNotFoundError."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (whole segments, never '') and return how many were deleted."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Return the objects under `prefix` (whole segments), sorted by key."""

    @abc.abstractmethod
    def presigned_url(self, key: str, expires_seconds: int) -> str:
        """Return a URL that downloads the object until `expires_seconds` from now."""

    def usage_bytes(self, prefix: str) -> int:
        """Return the total size in bytes of the objects under `prefix`."""
        return sum(info.size_bytes for info in self.list(prefix))

    def for_tenant(self, tenant: str) -> TenantStorage:
        """Return a view of this storage confined to the tenant's prefix `tenants/<name>/`."""
        return TenantStorage(self, tenant)

    def _check_delete_prefix(self, prefix: str) -> str:
        checked = check_prefix(prefix)
        if not checked:
            raise InvalidKeyError(prefix, "must not be empty: deleting every object is not allowed", "prefix")
        return checked


class TenantStorage:
    """The objects of one tenant. Keys are relative to `tenants/<name>/` and cannot leave it."""

    def __init__(self, storage: Storage, tenant: str) -> None:
        self.storage = storage
        self.tenant = tenant
        self.prefix = storage_prefix(tenant)
        check_prefix(self.prefix, "tenant")

    def key(self, relative_key: str) -> str:
        """Return the full key of `relative_key`, or raise InvalidKeyError."""
        return self.prefix + check_key(relative_key)

    def put_bytes(self, relative_key: str, data: bytes, content_type: str = CONTENT_TYPE_DEFAULT) -> str:
        key = self.key(relative_key)
        self.storage.put_bytes(key, data, content_type)
        return key

    def put_file(self, relative_key: str, path: Path) -> str:
        key = self.key(relative_key)
        self.storage.put_file(key, path)
        return key

    def get_bytes(self, relative_key: str) -> bytes:
        return self.storage.get_bytes(self.key(relative_key))

    def delete(self, relative_key: str) -> None:
        self.storage.delete(self.key(relative_key))

    def list(self, relative_prefix: str = "") -> list[ObjectInfo]:
        return self.storage.list(self.prefix + check_prefix(relative_prefix))

    def usage_bytes(self) -> int:
        return self.storage.usage_bytes(self.prefix)

    def delete_all(self) -> int:
        """Delete every object of the tenant and return how many were deleted."""
        return self.storage.delete_prefix(self.prefix)

    def presigned_url(self, relative_key: str, expires_seconds: int) -> str:
        return self.storage.presigned_url(self.key(relative_key), expires_seconds)


class LocalStorage(Storage):
    """Objects as files under `root`. Writes go to a temporary file first and are renamed into place.

    Signed URLs use `signing_key`; without one, a random key is created once in
    `root/.livery-signing-key`, so every process that shares the folder signs
    alike. Keys whose first segment starts with `.` are reserved for these files.
    """

    def __init__(self, root: Path, signing_key: str | bytes | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        if signing_key is None:
            signing_key = self._load_signing_key()
        self._signing_key = signing_key.encode() if isinstance(signing_key, str) else signing_key

    def put_bytes(self, key: str, data: bytes, content_type: str = CONTENT_TYPE_DEFAULT) -> None:
        # NOTE: the local backend keeps no content type; the app stores it with the file's metadata.
        target = self._path(key)
        partial = self._partial_path()
        partial.write_bytes(data)
        self._move_into_place(partial, target)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        partial = self._partial_path()
        shutil.copyfile(path, partial)
        self._move_into_place(partial, target)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        self._remove_empty_folders(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        checked = self._check_delete_prefix(prefix)
        objects = self.list(checked)
        folder = self._path(checked.rstrip("/"))
        shutil.rmtree(folder, ignore_errors=True)
        self._remove_empty_folders(folder.parent)
        return len(objects)

    def list(self, prefix: str) -> list[ObjectInfo]:
        checked = check_prefix(prefix)
        folder = self._path(checked.rstrip("/")) if checked else self.root
        if not folder.is_dir():
            return []
        found = []
        for directory, folders, files in os.walk(folder):
            if Path(directory) == self.root:
                folders[:] = [name for name in folders if not name.startswith(".")]
                files = [name for name in files if not name.startswith(".")]
            for name in files:
                path = Path(directory) / name
                stat = path.stat()
                key = path.relative_to(self.root).as_posix()
                found.append(ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
        return sorted(found, key=lambda info: info.key)

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        expires = int(time.time()) + check_expiry(expires_seconds)
        signature = self._signature(key, expires)
        return f"{LOCAL_URL_PREFIX}{quote(key)}?expires={expires}&signature={signature}"

    def resolve_signed_path(self, key: str, expires: str | int, signature: str) -> Path:
        """Return the file a signed URL names, or raise InvalidSignatureError or ObjectNotFoundError.

        `key` is the URL path after `LOCAL_URL_PREFIX`, percent-decoded, and
        `expires` and `signature` are the query parameters.
        """
        check_key(key)
        try:
            expires_at = int(expires)
        except (TypeError, ValueError):
            raise InvalidSignatureError("expires: must be a Unix time in seconds") from None
        if not hmac.compare_digest(self._signature(key, expires_at), str(signature)):
            raise InvalidSignatureError("signature: does not match the key and expiry time")
        if expires_at < time.time():
            raise InvalidSignatureError("the link has expired; request a new one")
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(key)
        return path

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.startswith("."):
            raise InvalidKeyError(key, "must not start with '.': such names are reserved for the storage itself")
        path = self.root.joinpath(*key.split("/"))
        # A symbolic link inside the folder must not lead out of it.
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise InvalidKeyError(key, "must stay inside the storage folder")
        return path

    def _partial_path(self) -> Path:
        folder = self.root / PARTIAL_FOLDER
        folder.mkdir(exist_ok=True)
        return folder / uuid.uuid4().hex

    def _move_into_place(self, partial: Path, target: Path) -> None:
        try:
            # Tenant files and snapshots are for the platform's own user only, whatever the umask.
            os.chmod(partial, 0o600)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(f"writing {target.relative_to(self.root).as_posix()!r} failed: {exc.strerror}") from exc

    def _remove_empty_folders(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def _load_signing_key(self) -> bytes:
        path = self.root / SIGNING_KEY_FILE
        if not path.exists():
            # The key is written to a temporary file and linked into place, so a
            # process that starts at the same time never reads a half-written key.
            partial = self._partial_path()
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_hex(32).encode())
            try:
                os.link(partial, path)
            except FileExistsError:
                pass
            finally:
                partial.unlink()
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise StorageError(f"the signing key file {path} is shorter than 32 bytes; delete it to create a new one")
        return key


class S3Storage(Storage):
    """Objects in an S3 bucket through boto3; `endpoint_url` selects MinIO or another S3-compatible server.

    Credentials and region come from boto3's usual sources (environment,
    shared config, instance role); the region defaults to us-east-1.
    """

    def __init__(self, bucket: str, endpoint_url: str | None = None, client: Any = None) -> None:
        if not bucket:
            raise StorageError("bucket: must not be empty")
        self.bucket = bucket
        self.client = client or _s3_client(endpoint_url)

    def put_bytes(self, key: str, data: bytes, content_type: str = CONTENT_TYPE_DEFAULT) -> None:
        check_key(key)
        self._call("writing", key, self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        extra = {"ContentType": CONTENT_TYPE_DEFAULT}
        self._call("uploading", key, self.client.upload_file, str(path), self.bucket, key, ExtraArgs=extra)

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        response = self._call("reading", key, self.client.get_object, Bucket=self.bucket, Key=key)
        return response["Body"].read()

    def delete(self, key: str) -> None:
        check_key(key)
        self._call("deleting", key, self.client.delete_object, Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        checked = self._check_delete_prefix(prefix)
        keys = [info.key for info in self.list(checked)]
        for start in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
            response = self._call("deleting", checked, self.client.delete_objects, Bucket=self.bucket, Delete=batch)
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    f"deleting objects under {checked!r} in bucket {self.bucket!r} failed for "
                    f"{len(response['Errors'])} keys, first {first.get('Key')!r}: {first.get('Message')}"
                )
        return len(keys)

    def list(self, prefix: str) -> list[ObjectInfo]:
        checked = check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=checked):
                for item in page.get("Contents", []):
                    found.append(ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"]))
        except Exception as exc:  # noqa: BLE001 - botocore raises several unrelated types
            raise self._error("listing", checked, exc) from exc
        return sorted(found, key=lambda info: info.key)

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        return self._call(
            "signing",
            key,
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=check_expiry(expires_seconds),
        )

    def _call(self, action: str, key: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - botocore raises several unrelated types
            raise self._error(action, key, exc) from exc

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            return ObjectNotFoundError(key)
        return StorageError(f"{action} {key!r} in bucket {self.bucket!r} failed: {code or type(exc).__name__}: {exc}")


def _s3_client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {"signature_version": "s3v4", "retries": {"max_attempts": 3, "mode": "standard"}}
    if endpoint_url:
        # MinIO and most S3-compatible servers expect path-style addressing.
        options["s3"] = {"addressing_style": "path"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options))


def open_storage(
    bucket: str | None,
    endpoint_url: str | None,
    files_dir: Path | None,
    *,
    signing_key: str | bytes | None = None,
) -> Storage:
    """Return S3 storage when `bucket` is set, else local storage in `files_dir`.

    `signing_key` signs the local backend's download URLs (the tenant app
    passes its session key); the S3 backend ignores it.
    """
    if bucket:
        return S3Storage(bucket, endpoint_url)
    if files_dir is None:
        raise StorageError("no file storage configured: set LIVERY_S3_BUCKET or LIVERY_FILES_DIR")
    return LocalStorage(Path(files_dir), signing_key=signing_key)
