"""Regression tests, one per class of bad input the contract refuses: each is a 4xx in the error
shape, never a 500 (on PostgreSQL too: tests/e2e/test_schemathesis.py sends the same classes to a
running chute)."""

from __future__ import annotations

import io
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import create_environ, run_wsgi_app

from models import cors
from models.cors import ORIGIN_PATTERN
from tests.conftest import TenantKeys
from web.contract import AUTH_ERRORS, MAX_JSON_BYTES

ID_HEX = "0123456789abcdef01234567"


def post_json(client: FlaskClient, tenant: TenantKeys, body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    response = client.post("/v1/uploads", data=raw, headers={**tenant.headers, "Content-Type": "application/json"})
    return response.status_code, response.get_json()


def error_of(status: int, body: dict[str, Any]) -> tuple[int, str]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return status, body["error"]["code"]


def batch(client: FlaskClient, tenant: TenantKeys, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    form = {"file": [(io.BytesIO(b"hello"), "hello.txt")], **data}
    response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
    return response.status_code, response.get_json()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_not_json(client: FlaskClient, tenant: TenantKeys, number: str) -> None:
    status, body = post_json(client, tenant, '{"filename": "a.txt", "size": 1, "metadata": {"n": ' + number + "}}")
    assert error_of(status, body) == (400, "invalid_json")


def test_a_lone_surrogate_is_not_json(client: FlaskClient, tenant: TenantKeys) -> None:
    status, body = post_json(client, tenant, '{"filename": "\\ud800.txt", "size": 1}')
    assert error_of(status, body) == (400, "invalid_json")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("filename", "a" * 256, "invalid_filename"),
        ("content_type", "text/" + "x" * 251, "invalid_field"),
        ("webhook_url", "https://example.com/" + "x" * 2000, "invalid_field"),
        ("metadata", {"k": "v" * 501}, "invalid_field"),
        ("metadata", {"k" * 41: "v"}, "invalid_field"),
        ("metadata", {f"k{n}": n for n in range(17)}, "invalid_field"),
        ("metadata", {"nested": {"no": "objects"}}, "invalid_field"),
        ("size", 2**53 + 1, "invalid_field"),
        ("chunk_size", 10**30, "invalid_field"),
    ],
)
def test_values_are_bounded_like_their_columns(
    client: FlaskClient, tenant: TenantKeys, field: str, value: Any, code: str
) -> None:
    status, body = post_json(client, tenant, {"filename": "a.txt", "size": 10, field: value})
    assert error_of(status, body) == (422, code)
    assert body["error"]["details"]["errors"][0]["field"].split(".")[0] == field


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("filename", "a\x00b.txt", "invalid_filename"),
        ("filename", "invoice\u202efdp.exe", "invalid_filename"),  # shows as invoiceexe.pdf
        ("filename", "a\u2066b.txt", "invalid_filename"),
        ("filename", "line\nbreak.txt", "invalid_filename"),
        ("filename", "trailing.txt\n", "invalid_filename"),
        ("filename", "dir/a.txt", "invalid_filename"),
        ("filename", "..", "invalid_filename"),
        ("filename", "   ", "invalid_filename"),
        ("content_type", "text/plain\x00", "invalid_field"),
        ("webhook_url", "https://example.com/\x00", "invalid_field"),
        ("metadata", {"k": "v\x00"}, "invalid_field"),
        ("metadata", {"k\x00": "v"}, "invalid_field"),
        ("metadata", {"k": "\u202e"}, "invalid_field"),
        ("sha256", "a" * 63 + "\x00", "invalid_sha256"),
    ],
)
def test_nul_control_and_bidi_characters_are_refused(
    client: FlaskClient, tenant: TenantKeys, field: str, value: Any, code: str
) -> None:
    status, body = post_json(client, tenant, {"filename": "a.txt", "size": 10, field: value})
    assert error_of(status, body) == (422, code)


def test_safe_unicode_names_are_kept(client: FlaskClient, tenant: TenantKeys) -> None:
    name = "Résumé — 履歴書 📄.pdf"
    status, body = post_json(client, tenant, {"filename": name, "size": 10, "metadata": {"note": "ça va"}})
    assert status == 201
    shown = client.get(f"/v1/uploads/{body['upload_id']}", headers=tenant.headers).get_json()
    assert shown["filename"] == name and shown["metadata"] == {"note": "ça va"}


def test_an_integral_float_is_an_integer_but_a_string_is_not(client: FlaskClient, tenant: TenantKeys) -> None:
    assert post_json(client, tenant, '{"filename": "a.txt", "size": 10.0}')[0] == 201
    assert error_of(*post_json(client, tenant, '{"filename": "a.txt", "size": 10.5}')) == (422, "invalid_field")
    assert error_of(*post_json(client, tenant, '{"filename": "a.txt", "size": "10"}')) == (422, "invalid_field")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/job_%00" + ID_HEX[:-1],
        "/v1/jobs/job_" + ID_HEX + "%00",
        "/v1/jobs/" + "x" * 10_000,
        "/v1/jobs/job_" + ID_HEX.upper(),
        "/v1/jobs/../v1/jobs",
        "/v1/uploads/upl_%00/status",
        "/v1/uploads/upl_" + ID_HEX + "/chunks/" + "9" * 5000,  # more digits than Python converts
        "/v1/uploads/upl_" + ID_HEX + "/chunks/100000",
        "/v1/uploads/upl_" + ID_HEX + "/chunks/%D9%A3",  # an Arabic-Indic digit three
        "/v1/jobs/job_" + ID_HEX + "/derivatives/%00",
    ],
)
def test_an_id_of_the_wrong_shape_is_404(client: FlaskClient, tenant: TenantKeys, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.open(path, method=method, headers=tenant.headers, data=b"x")
        assert response.status_code in (404, 405), (method, path)
        if response.status_code == 404:
            assert error_of(404, response.get_json()) == (404, "not_found")


@pytest.mark.parametrize(
    "cursor", ["!!", "0", "x" * 300, "%00", "1-" + ID_HEX + "%0A", "99999999999999999-" + ID_HEX + "0"]
)
def test_a_malformed_cursor_is_400(client: FlaskClient, tenant: TenantKeys, cursor: str) -> None:
    response = client.get(f"/v1/jobs?cursor={cursor}", headers=tenant.headers)
    assert error_of(response.status_code, response.get_json()) == (400, "invalid_cursor")


def test_a_well_formed_cursor_past_every_job_is_an_empty_page(client: FlaskClient, tenant: TenantKeys) -> None:
    response = client.get(f"/v1/jobs?cursor=1-{ID_HEX}", headers=tenant.headers)
    assert response.status_code == 200 and response.get_json() == {"jobs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "code"),
    [("limit=0", "invalid_query"), ("limit=201", "invalid_query"), ("limit=" + "9" * 5000, "invalid_query"),
     ("limit=1.5", "invalid_query"), ("status=bogus", "invalid_query"), ("status=%00", "invalid_query")],
)  # fmt: skip
def test_bad_query_parameters_are_400(client: FlaskClient, tenant: TenantKeys, query: str, code: str) -> None:
    response = client.get(f"/v1/jobs?{query}", headers=tenant.headers)
    assert error_of(response.status_code, response.get_json()) == (400, code)


class Unreadable(io.RawIOBase):
    """A request body that must never be read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")


def test_a_huge_json_body_is_refused_by_its_length_before_it_is_read(app: Flask, tenant: TenantKeys) -> None:
    environ = create_environ(
        "/v1/uploads", method="POST", headers={**tenant.headers, "Content-Type": "application/json"}
    )
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = Unreadable(), str(500 * 1024 * 1024)
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    answer = json.loads(b"".join(body))
    assert error_of(int(status.split()[0]), answer) == (413, "body_too_large")
    assert f"{MAX_JSON_BYTES}" in answer["error"]["message"]


def test_deep_nesting_is_refused_without_recursion(client: FlaskClient, tenant: TenantKeys) -> None:
    depth = MAX_JSON_BYTES // 2 - 10
    status, body = post_json(client, tenant, "[" * depth + "]" * depth)
    assert error_of(status, body) == (400, "invalid_json")


def test_werkzeug_errors_have_the_error_shape(client: FlaskClient, tenant: TenantKeys) -> None:
    response = client.patch("/v1/jobs", headers=tenant.headers)
    assert error_of(response.status_code, response.get_json()) == (405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    response = client.get("/nowhere")
    assert error_of(response.status_code, response.get_json()) == (404, "not_found")
    response = client.post("/v1/uploads", data="x", headers={**tenant.headers, "Content-Type": "text/plain"})
    assert error_of(response.status_code, response.get_json()) == (415, "unsupported_media_type")


def test_form_fields_are_bounded_and_validated(client: FlaskClient, tenant: TenantKeys) -> None:
    assert error_of(*batch(client, tenant, {"metadata": "[1]"})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"metadata": '{"k": NaN}'})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"metadata": '{"k": "v\\u0000"}'})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"metadata": "x" * 20_000})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"webhook_url": ""})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"surprise": "field"})) == (422, "invalid_field")
    assert error_of(*batch(client, tenant, {"notes": "x" * 70_000})) == (413, "body_too_large")
    status, body = batch(client, tenant, {"metadata": '{"k": "10"}'})
    assert status == 202


@pytest.mark.parametrize("name", ["a\x00b.txt", "evil\u202etxt.exe", "", "..", "C:\\Users\\me\\"])
def test_an_unsafe_part_filename_is_422(client: FlaskClient, tenant: TenantKeys, name: str) -> None:
    data = {"file": [(io.BytesIO(b"x"), name)]}
    response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 422 and response.get_json()["error"]["code"] in ("invalid_filename", "missing_file")


def test_a_part_path_keeps_its_base_name(client: FlaskClient, tenant: TenantKeys) -> None:
    data = {"file": [(io.BytesIO(b"x"), "home/me/notes.txt")]}
    response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202 and response.get_json()["jobs"][0]["filename"] == "notes.txt"


@pytest.mark.parametrize(
    "digest",
    ["sha-256=nope", "sha-512=:AAAA:", "sha-256=:" + "A" * 43 + "=:, md5=:AA==:", "sha-256=:" + "A" * 42 + "=:"],
)
def test_a_content_digest_chute_cannot_check_is_400(client: FlaskClient, tenant: TenantKeys, digest: str) -> None:
    created = post_json(client, tenant, {"filename": "a.bin", "size": 1})[1]
    response = client.put(
        f"/v1/uploads/{created['upload_id']}/chunks/0", data=b"x", headers={**tenant.headers, "Content-Digest": digest}
    )
    assert error_of(response.status_code, response.get_json()) == (400, "invalid_digest")


def test_auth_failures_carry_the_documented_codes(client: FlaskClient) -> None:
    documented = set(AUTH_ERRORS[401])
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer chute_nope"}):
        response = client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.get_json()["error"]["code"] in documented, headers


@pytest.mark.parametrize("origin", ["http://[", "http://[zz::1]", "http://[::1", "http://a:99999", "http://-a.com",
                                    "http://a..b", "https://app.example.com//", "http://a b"])  # fmt: skip
def test_what_is_no_origin_is_422(client: FlaskClient, tenant: TenantKeys, origin: str) -> None:
    response = client.put("/v1/cors-origins", json={"origins": [origin]}, headers=tenant.headers)
    assert error_of(response.status_code, response.get_json()) == (422, "invalid_origin")


@hypothesis.settings(max_examples=200, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(origin=hypothesis.strategies.from_regex(ORIGIN_PATTERN, fullmatch=True))
def test_every_origin_the_pattern_allows_is_a_url_with_a_host(origin: str) -> None:
    """A fuzzer (or a client) writes origins from the document's pattern: each must parse as a URL
    (schemathesis once crashed on ``http://[``) and be kept by models.cors."""
    if origin == cors.ANY:
        return
    parts = urlsplit(origin)
    assert parts.scheme.lower() in ("http", "https") and parts.hostname and parts.path in ("", "/")
    assert parts.port is None or 0 <= parts.port <= 65535
    if parts.netloc.startswith("["):
        ipaddress.IPv6Address(parts.hostname)
    assert cors.normalize([origin]) == [origin.lower().rstrip("/")]


def tus_create(client: FlaskClient, tenant: TenantKeys, **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/tus", headers={**tenant.headers, "Tus-Resumable": "1.0.0", **headers})
    return response.status_code, response.get_json() if response.status_code >= 400 else {}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Upload-Length": "+5"}, (400, "invalid_header")),
        ({"Upload-Length": "1_000"}, (400, "invalid_header")),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, (400, "invalid_header")),
        ({"Upload-Defer-Length": "2"}, (400, "invalid_header")),
        ({}, (400, "invalid_header")),
        ({"Upload-Length": "5", "Upload-Metadata": "filename a b"}, (400, "invalid_metadata")),
        ({"Upload-Length": "5", "Upload-Metadata": "k YQ==,k YQ=="}, (400, "invalid_metadata")),
        ({"Upload-Length": "5", "Upload-Checksum": "md5 YQ=="}, (400, "checksum_algorithm_unsupported")),
        ({"Upload-Length": "5", "Upload-Checksum": "sha1 not base64"}, (400, "invalid_header")),
        ({"Upload-Concat": "final;"}, (400, "invalid_header")),
        ({"Upload-Concat": f"final;/v1/tus/upl_{ID_HEX}"}, (404, "upload_not_found")),
    ],
)
def test_tus_headers_are_held_to_their_rules(
    client: FlaskClient, tenant: TenantKeys, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    assert error_of(*tus_create(client, tenant, **headers)) == expected


def test_tus_metadata_chute_does_not_read_may_be_any_bytes(client: FlaskClient, tenant: TenantKeys) -> None:
    """tus asks only for base64; the values chute reads (filename…) must be UTF-8, a client's own need not."""
    status, _ = tus_create(client, tenant, **{"Upload-Length": "5", "Upload-Metadata": "blob /w==,filename YS50eHQ="})
    assert status == 201
    status, body = tus_create(client, tenant, **{"Upload-Length": "5", "Upload-Metadata": "filename /w=="})
    assert error_of(status, body) == (400, "invalid_metadata")
