"""Object storage behind one interface: S3 through the ``minio`` client, or a local directory.

The upload stage drives multipart uploads part by part (so it can report progress, resume
after a retry from the parts already stored, and abort on cancel), which the minio client
only offers through its ``_create_multipart_upload``/``_upload_part``/... methods; they are
used here and nowhere else. Dependency errors are converted once, at this boundary:
network failures and S3 5xx become :class:`StorageUnavailable` (retried), the rest stay
permanent.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from models.errors import MultipartGone, StorageUnavailable

#: S3's smallest part (except the last) and largest part count.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000

T = TypeVar("T")


class ObjectStore(Protocol):
    """What the stages and the download endpoints need from a store."""

    bucket: str

    def ensure_bucket(self) -> None: ...
    def ping(self) -> None: ...
    def put_stream(self, key: str, stream: BinaryIO, length: int, content_type: str) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str) -> None: ...
    def begin_multipart(self, key: str, content_type: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, number: int, offset: int, data: bytes) -> str: ...
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...
    def download_to(self, key: str, path: Path) -> None: ...
    def read_range(self, key: str, offset: int, length: int) -> bytes: ...
    def iter_object(self, key: str) -> Iterator[bytes]: ...
    def presigned_get(self, key: str, ttl_seconds: int, filename: str | None = None) -> str | None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...


def _s3_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Convert network failures and S3 server errors into StorageUnavailable."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except S3Error as e:
            if e.code == "NoSuchUpload":
                raise MultipartGone(f"S3 no longer has the multipart upload: {e.message}") from None
            if e.code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"):
                raise StorageUnavailable(f"S3 {e.code}: {e.message}") from None
            raise
        except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as e:
            raise StorageUnavailable(f"object storage unavailable: {e}") from None
        except MinioException as e:
            raise StorageUnavailable(f"object storage error: {e}") from None

    return wrapper


class S3Store:
    """An S3 bucket (MinIO, AWS, moto's server) through the ``minio`` client.

    Parameters:
        url: ``s3://ACCESS:SECRET@host:port/bucket?secure=0&region=us-east-1``.
        public_url: The endpoint clients reach (``https://files.example.com``): presigned URLs
            are signed for its host, since a signature covers the Host header. Empty: ``url``'s.
    """

    def __init__(self, url: str, public_url: str = ""):
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.bucket = parts.path.strip("/")
        if not self.bucket or not parts.hostname:
            raise ValueError(f"storage URL {url!r} needs a host and a bucket")
        self.endpoint = parts.netloc.rsplit("@", 1)[-1]
        secure = query.get("secure", "1").lower() not in ("0", "false", "no")
        # Few, quick retries here: a store that is down should surface as StorageUnavailable
        # soon, so Dramatiq's backoff (not a blocked thread) does the waiting.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=120),
            maxsize=32,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            self.endpoint,
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            secure=secure,
            region=query.get("region", "us-east-1"),
            http_client=http,
        )
        self.signer = self.client
        if public_url:
            public = urlsplit(public_url)
            if public.scheme not in ("http", "https") or not public.hostname or public.path.strip("/"):
                raise ValueError(f"storage public URL {public_url!r} must be http(s)://host[:port], without a path")
            # Signing is local (the region is given), so this client never connects anywhere.
            self.signer = Minio(
                public.netloc,
                access_key=unquote(parts.username or ""),
                secret_key=unquote(parts.password or ""),
                secure=public.scheme == "https",
                region=query.get("region", "us-east-1"),
            )

    @_s3_errors
    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as e:
                if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    @_s3_errors
    def ping(self) -> None:
        self.client.bucket_exists(self.bucket)

    @_s3_errors
    def put_stream(self, key: str, stream: BinaryIO, length: int, content_type: str) -> None:
        self.client.put_object(self.bucket, key, stream, length, content_type=content_type)

    @_s3_errors
    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.client.fput_object(self.bucket, key, str(path), content_type=content_type)

    @_s3_errors
    def begin_multipart(self, key: str, content_type: str) -> str:
        return self.client._create_multipart_upload(self.bucket, key, {"Content-Type": content_type})

    @_s3_errors
    def upload_part(self, key: str, upload_id: str, number: int, offset: int, data: bytes) -> str:
        return self.client._upload_part(self.bucket, key, data, None, upload_id, number)

    @_s3_errors
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self.client._complete_multipart_upload(self.bucket, key, upload_id, [Part(n, etag) for n, etag in parts])

    @_s3_errors
    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.client._abort_multipart_upload(self.bucket, key, upload_id)
        except S3Error as e:
            if e.code != "NoSuchUpload":  # already gone is what we wanted
                raise

    @_s3_errors
    def download_to(self, key: str, path: Path) -> None:
        self.client.fget_object(self.bucket, key, str(path))

    @_s3_errors
    def read_range(self, key: str, offset: int, length: int) -> bytes:
        response = self.client.get_object(self.bucket, key, offset=offset, length=length)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def iter_object(self, key: str) -> Iterator[bytes]:
        response = _s3_errors(self.client.get_object)(self.bucket, key)
        try:
            yield from response.stream(1024 * 1024)
        finally:
            response.close()
            response.release_conn()

    @_s3_errors
    def presigned_get(self, key: str, ttl_seconds: int, filename: str | None = None) -> str | None:
        headers: dict[str, str | list[str] | tuple[str]] | None = None
        if filename:
            headers = {"response-content-disposition": content_disposition(filename)}
        return self.signer.presigned_get_object(
            self.bucket, key, expires=timedelta(seconds=ttl_seconds), response_headers=headers
        )

    @_s3_errors
    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    @_s3_errors
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many there were."""
        keys = [o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        for key in keys:
            if key is not None:
                self.client.remove_object(self.bucket, key)
        return len(keys)


class FileStore:
    """A directory standing in for a bucket (the embedded default): ``{root}/{key}``.

    Multipart uploads write each part at its offset into one file under ``.multipart/`` and
    rename it into place on completion, so the object is written once and appears atomically.
    """

    def __init__(self, url: str):
        path = url.removeprefix("file://")
        self.root = Path(path).resolve()
        self.bucket = self.root.name

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"key {key!r} escapes the store")
        return path

    def _incoming(self, upload_id: str) -> Path:
        return self.root / ".multipart" / upload_id

    def ensure_bucket(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"store directory {self.root} is missing")

    def put_stream(self, key: str, stream: BinaryIO, length: int, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        with open(path, "rb") as stream:
            self.put_stream(key, stream, path.stat().st_size, content_type)

    def begin_multipart(self, key: str, content_type: str) -> str:
        upload_id = os.urandom(12).hex()
        self._incoming(upload_id).parent.mkdir(parents=True, exist_ok=True)
        self._incoming(upload_id).touch()
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, offset: int, data: bytes) -> str:
        if not self._incoming(upload_id).exists():
            raise MultipartGone(f"no multipart upload {upload_id}")
        with open(self._incoming(upload_id), "r+b") as out:
            out.seek(offset)
            out.write(data)
        return f"{number}-{len(data)}"

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        incoming = self._incoming(upload_id)
        if not incoming.exists():
            raise MultipartGone(f"no multipart upload {upload_id}")
        with open(incoming, "r+b") as out:
            os.fsync(out.fileno())
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, target)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._incoming(upload_id).unlink(missing_ok=True)

    def download_to(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def iter_object(self, key: str) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            while block := f.read(1024 * 1024):
                yield block

    def presigned_get(self, key: str, ttl_seconds: int, filename: str | None = None) -> str | None:
        return None  # the API streams local objects itself

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        directory = self._path(prefix.rstrip("/"))
        if not directory.is_dir():
            return 0
        count = sum(1 for p in directory.rglob("*") if p.is_file())
        shutil.rmtree(directory, ignore_errors=True)
        return count


_stores: dict[str, ObjectStore] = {}
_lock = threading.Lock()


def open_store(url: str, public_url: str = "") -> ObjectStore:
    """The store for ``url``, one per process (the minio client is thread-safe); ``public_url``
    is the endpoint its presigned URLs name (``CHUTE_STORAGE_PUBLIC_URL``)."""
    with _lock:
        store = _stores.get(f"{url} {public_url}")
        if store is None:
            if url.startswith("s3://"):
                store = S3Store(url, public_url)
            elif url.startswith("file://"):
                store = FileStore(url)
            else:
                raise ValueError(f"unsupported storage URL {url!r} (use s3:// or file://)")
            _stores[f"{url} {public_url}"] = store
        return store


def content_disposition(filename: str) -> str:
    """An RFC 6266 ``attachment`` header for any name: a Latin-1-safe ASCII fallback (WSGI
    headers must be Latin-1) plus ``filename*`` in UTF-8 when the name is not plain ASCII."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join("_" if c in '"\\' or ord(c) < 32 else c for c in fallback).strip() or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def part_size_for(size: int, preferred: int) -> int:
    """A part size that keeps S3's rules: at least 5 MiB and at most 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    mib = 1024 * 1024
    return max(preferred, MIN_PART_SIZE, -(-needed // mib) * mib)
