"""Both stores through one interface; S3 through the real minio client against moto's server."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from actors.storage import MIN_PART_SIZE, FileStore, ObjectStore, S3Store, part_size_for
from models.errors import StorageUnavailable
from tests.support import services


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """moto's S3 server (or a real S3/MinIO via CHUTE_TEST_S3_URL)."""
    moto = services.MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield moto.port
    moto.stop()


@pytest.fixture(params=["s3", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        store: ObjectStore = FileStore(f"file://{tmp_path}/objects")
    else:
        url = os.environ.get("CHUTE_TEST_S3_URL") or services.s3_url(
            "127.0.0.1", request.getfixturevalue("s3_endpoint"), f"t-{os.urandom(4).hex()}"
        )
        store = S3Store(url)
    store.ensure_bucket()
    return store


def test_multipart_upload_resumes_from_recorded_parts(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(MIN_PART_SIZE * 2 + 1234)
    parts = [data[:MIN_PART_SIZE], data[MIN_PART_SIZE : 2 * MIN_PART_SIZE], data[2 * MIN_PART_SIZE :]]
    upload_id = store.begin_multipart("k/obj.bin", "application/octet-stream")
    done = [(1, store.upload_part("k/obj.bin", upload_id, 1, 0, parts[0]))]
    # a retry after an outage sends only the parts not yet recorded
    for number in (2, 3):
        offset = (number - 1) * MIN_PART_SIZE
        done.append((number, store.upload_part("k/obj.bin", upload_id, number, offset, parts[number - 1])))
    store.complete_multipart("k/obj.bin", upload_id, done)
    assert b"".join(store.iter_object("k/obj.bin")) == data
    assert store.read_range("k/obj.bin", MIN_PART_SIZE - 2, 4) == data[MIN_PART_SIZE - 2 : MIN_PART_SIZE + 2]
    store.download_to("k/obj.bin", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == data


def test_aborted_multipart_leaves_no_object(store: ObjectStore) -> None:
    upload_id = store.begin_multipart("k/gone.bin", "application/octet-stream")
    store.upload_part("k/gone.bin", upload_id, 1, 0, b"x" * MIN_PART_SIZE)
    store.abort_multipart("k/gone.bin", upload_id)
    store.abort_multipart("k/gone.bin", upload_id)  # idempotent
    with pytest.raises(Exception):  # noqa: B017 (each store raises its own not-found)
        store.read_range("k/gone.bin", 0, 1)


def test_small_objects_and_presigned_urls(store: ObjectStore) -> None:
    store.put_stream("k/small.txt", io.BytesIO(b"hello"), 5, "text/plain")
    assert store.read_range("k/small.txt", 0, 5) == b"hello"
    url = store.presigned_get("k/small.txt", 60, "small.txt")
    if isinstance(store, S3Store):
        assert url is not None and requests.get(url, timeout=10).content == b"hello"
    else:
        assert url is None  # the API streams local objects itself
    store.delete("k/small.txt")


def test_an_unreachable_s3_is_storage_unavailable() -> None:
    store = S3Store(services.s3_url("127.0.0.1", services.free_port(), "nobucket"))
    with pytest.raises(StorageUnavailable):
        store.ping()


def test_part_size_keeps_s3_rules() -> None:
    assert part_size_for(10, 8 << 20) == 8 << 20
    assert part_size_for(1 << 40, 8 << 20) * 10_000 >= 1 << 40
    assert part_size_for(100, 1) == MIN_PART_SIZE


def test_file_store_refuses_keys_that_escape(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileStore(f"file://{tmp_path}/o").read_range("../../etc/passwd", 0, 1)


def test_presigned_urls_name_the_public_endpoint(s3_endpoint: int) -> None:
    """Signed for the host clients reach (here the same server as ``localhost``, through a TCP proxy
    standing in for the public load balancer). moto does not check signatures; a real MinIO
    (CHUTE_TEST_S3_URL) would refuse the URL if it were signed for another host."""
    proxy = services.TcpProxy(s3_endpoint)
    try:
        public = f"http://localhost:{proxy.port}"
        store = S3Store(services.s3_url("127.0.0.1", s3_endpoint, f"t-{os.urandom(4).hex()}"), public_url=public)
        store.ensure_bucket()
        store.put_stream("k/public.txt", io.BytesIO(b"outside"), 7, "text/plain")
        url = store.presigned_get("k/public.txt", 60, "public.txt")
        assert url is not None and url.startswith(public + "/")
        assert requests.get(url, timeout=10).content == b"outside"
    finally:
        proxy.close()


def test_a_public_url_with_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="without a path"):
        S3Store(services.s3_url("127.0.0.1", 9, "b"), public_url="https://files.example.com/s3")
