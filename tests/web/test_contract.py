"""The contract layer: JSON bodies are bounded and validated before a view runs, and the OpenAPI
document is written from the same declarations."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import TenantKeys
from web.contract import MAX_JSON_BYTES, MAX_JSON_DEPTH


def post_raw(client: FlaskClient, tenant: TenantKeys, body: bytes | str) -> tuple[int, Any]:
    response = client.post("/v1/uploads", data=body, headers={**tenant.headers, "Content-Type": "application/json"})
    return response.status_code, response.get_json(silent=True)


def test_nan_and_infinity_are_not_json(client: FlaskClient, tenant: TenantKeys) -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        status, body = post_raw(client, tenant, '{"filename": "a.txt", "size": ' + constant + "}")
        assert (status, body["error"]["code"]) == (400, "invalid_json")


def test_deep_nesting_is_refused(client: FlaskClient, tenant: TenantKeys) -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    status, body = post_raw(client, tenant, '{"filename": "a.txt", "size": 1, "metadata": {"x": ' + deep + "}}")
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    very_deep = "[" * 100_000 + "]" * 100_000  # over the byte limit too: refused by its length
    status, body = post_raw(client, tenant, very_deep)
    assert status in (400, 413)


def test_a_body_over_the_json_limit_is_refused_by_its_length(client: FlaskClient, tenant: TenantKeys) -> None:
    status, body = post_raw(client, tenant, b'{"filename": "' + b"a" * MAX_JSON_BYTES + b'", "size": 1}')
    assert (status, body["error"]["code"]) == (413, "body_too_large")


def test_model_errors_say_which_field(client: FlaskClient, tenant: TenantKeys) -> None:
    status, body = post_raw(client, tenant, '{"filename": "a.txt", "size": -1}')
    assert (status, body["error"]["code"]) == (422, "invalid_field")
    assert body["error"]["details"]["errors"][0]["field"] == "size"
    status, body = post_raw(client, tenant, '{"filename": "a.txt", "size": 1, "surprise": true}')
    assert status == 422 and body["error"]["details"]["errors"][0]["field"] == "surprise"


def test_declared_operations_are_in_the_document(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    create = doc["paths"]["/v1/uploads"]["post"]
    assert create["operationId"] == "createUpload"
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/UploadCreate")
    assert "Location" in create["responses"]["201"]["headers"]
    assert set(create["responses"]) >= {"201", "400", "401", "413", "415", "422"}
    codes_422 = create["responses"]["422"]["content"]["application/json"]["schema"]["allOf"][1]
    assert "invalid_chunk_size" in codes_422["properties"]["error"]["properties"]["code"]["enum"]
    upload_create = doc["components"]["schemas"]["UploadCreate"]
    assert upload_create["properties"]["size"]["minimum"] == 0
    assert doc["paths"]["/healthz"]["get"]["security"] == []
