"""The OpenAPI document: every route is declared (so routes added later must be too), the document
validates as OpenAPI 3.1, and it says what clients and generators need; /docs renders it offline."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from models.settings import Settings
from tests.conftest import TenantKeys
from web.openapi import documented_routes

METHODS = {"get", "put", "post", "delete", "patch", "head"}


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.get_json())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in doc["paths"].items() for method, op in item.items() if method in METHODS
    ]


def test_every_flask_route_is_a_declared_operation_in_the_document(app: Flask, client: FlaskClient) -> None:
    doc = document(client)
    undeclared = [(r.method.upper(), r.rule) for r in documented_routes(app) if r.operation is None]
    assert undeclared == [], "declare these with web.contract.operation"
    served = {(r.path, r.method) for r in documented_routes(app)}
    assert served == {(path, method) for path, method, _ in operations(doc)}


def test_the_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_operation_is_described(client: FlaskClient) -> None:
    doc = document(client)
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        assert op["tags"] and op["summary"] and op["description"], where
        assert set(op["tags"]) <= {tag["name"] for tag in doc["tags"]}, where
        for name in re.findall(r"{(job_id|upload_id|index)}", path):  # chute's ids have their shapes
            (param,) = [p for p in op["parameters"] if p["in"] == "path" and p["name"] == name]
            assert "pattern" in param["schema"] or "enum" in param["schema"] or param["schema"]["type"] == "integer"
        for status, response in op["responses"].items():
            code = int(status)
            if 300 <= code < 400:
                assert "Location" in response["headers"], where
            elif code >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema["allOf"][0]["$ref"] == "#/components/schemas/ErrorBody", where
                assert schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"], where
            else:
                assert "content" in response or "headers" in response or code == 204, where
        if op["security"]:
            (scheme,) = op["security"][0]
            assert scheme in doc["components"]["securitySchemes"] and "401" in op["responses"], where
        if "{" in path:
            assert "not_found" in _codes(op, 404), where


def _codes(op: dict[str, Any], status: int) -> list[str]:
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    return list(schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"])


def test_parameters_bodies_and_limits_are_stated(client: FlaskClient, settings: Settings) -> None:
    doc = document(client)
    params = {p["name"]: p for p in doc["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert set(params) == {"status", "limit", "cursor"} and params["limit"]["schema"]["maximum"] == 200
    assert params["cursor"]["schema"]["pattern"] and "null" not in json.dumps(params["status"]["schema"])
    put = doc["paths"]["/v1/uploads/{upload_id}/chunks/{index}"]["put"]
    (digest,) = [p for p in put["parameters"] if p["in"] == "header"]
    assert digest["name"] == "Content-Digest" and digest["schema"]["pattern"].startswith("^sha-256=")
    assert "application/octet-stream" in put["requestBody"]["content"]
    assert {"chunk_size_mismatch", "checksum_mismatch"} <= set(_codes(put, 422))
    create = doc["components"]["schemas"]["UploadCreate"]["properties"]
    assert create["size"]["maximum"] == settings.max_upload_size
    assert create["filename"]["maxLength"] == 255 and create["filename"]["pattern"]
    batch = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert batch["schema"]["properties"]["file"]["maxItems"] == settings.max_files_per_request
    download = doc["paths"]["/v1/jobs/{job_id}/download"]["get"]["responses"]
    assert "Location" in download["302"]["headers"] and "Content-Disposition" in download["200"]["headers"]
    links = doc["paths"]["/v1/uploads"]["post"]["responses"]["201"]["links"]
    assert links["PutChunk"]["operationId"] == "putChunk"
    assert doc["components"]["securitySchemes"]["bearer"] == {**doc["components"]["securitySchemes"]["bearer"],
                                                             "type": "http", "scheme": "bearer"}  # fmt: skip


def test_gunicorn_answers_are_said(client: FlaskClient) -> None:
    doc = document(client)
    assert {"400", "414", "431"} <= set(doc["x-gunicorn-errors"])
    assert "gunicorn" in doc["info"]["description"]


def test_webhook_events_are_described_with_their_headers(client: FlaskClient) -> None:
    doc = document(client)
    assert set(doc["webhooks"]) == {"job.completed", "job.failed", "job.cancelled"}
    for event, item in doc["webhooks"].items():
        post = item["post"]
        assert {p["name"] for p in post["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        body = post["requestBody"]["content"]["application/json"]["schema"]["allOf"]
        assert (
            body[0]["$ref"] == "#/components/schemas/WebhookEvent" and body[1]["properties"]["type"]["const"] == event
        )
    event = doc["components"]["schemas"]["WebhookEvent"]
    assert event["properties"]["data"]["$ref"] == "#/components/schemas/JobView"


def test_docs_render_swagger_ui_from_chute_itself(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert '"persistAuthorization": true' in html and '"tryItOutEnabled": true' in html
    assert '"url": "/openapi.json"' in html
    for source in sources:
        with client.get(source) as asset:
            assert asset.status_code == 200 and len(asset.data) > 100, source
    with client.get("/docs/assets/swagger-ui-bundle.js") as bundle:
        assert bundle.mimetype == "text/javascript" and b"SwaggerUIBundle" in bundle.data
    assert client.get("/docs/assets/secret.py").status_code == 404


def test_the_webhook_body_is_the_job_view_byte_for_byte(client, tenant: TenantKeys, drain, api) -> None:  # type: ignore[no-untyped-def]
    """The JobView model kept the webhook payload's bytes: keys in the same order, times with Z,
    compact separators, ASCII escapes (consumers that hash or sign bodies depend on it)."""
    from models import job as jobs
    from models.db import read_scope
    from tests.support.webhook_receiver import WebhookReceiver

    with WebhookReceiver(secret=tenant.webhook_secret) as receiver:
        data = {"file": [(__import__("io").BytesIO(b"hello"), "héllo.txt")], "webhook_url": receiver.url(),
                "metadata": '{"n": 1, "s": "ü"}'}  # fmt: skip
        response = client.post("/v1/jobs", data=data, headers=tenant.headers, content_type="multipart/form-data")
        job_id = response.get_json()["jobs"][0]["job_id"]
        drain()
        (request,) = receiver.wait_for(1)
    with read_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None

        def iso(value: Any) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        expected = {
            "job_id": job.id, "upload_id": job.upload_id, "filename": "héllo.txt", "content_type": job.content_type,
            "detected_type": job.detected_type, "type_mismatch": False, "kind": job.kind, "size": 5,
            "sha256": job.sha256, "status": "completed", "stage": None, "progress": 1.0, "attempts": job.attempts,
            "error": None, "metadata": {"n": 1, "s": "ü"}, "webhook": {"status": "pending", "attempts": 0},
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "completed_at": iso(job.completed_at),
        }  # fmt: skip
    event = json.loads(request.body)
    old_style = json.dumps({"type": "job.completed", "timestamp": event["timestamp"], "data": expected},
                           separators=(",", ":"))  # fmt: skip
    assert request.body == old_style.encode()


def test_tus_headers_and_statuses_are_stated(client: FlaskClient, settings: Settings) -> None:
    doc = document(client)
    create = doc["paths"]["/v1/tus"]["post"]
    params = {p["name"]: p for p in create["parameters"] if p["in"] == "header"}
    assert params["Tus-Resumable"]["required"] and params["Tus-Resumable"]["schema"]["const"] == "1.0.0"
    assert params["Upload-Length"]["schema"]["maximum"] == settings.max_upload_size
    patterned = {name for name, p in params.items() if "pattern" in p["schema"]}
    assert {"Upload-Metadata", "Upload-Concat", "Upload-Checksum"} <= patterned
    assert create["responses"]["412"]["headers"]["Tus-Version"]["required"]
    assert "460" in create["responses"] and "tus_version_unsupported" in _codes(create, 412)
    patch = {p["name"]: p for p in doc["paths"]["/v1/tus/{upload_id}"]["patch"]["parameters"]}
    assert patch["Upload-Offset"]["required"] and patch["Upload-Offset"]["schema"]["type"] == "integer"
    created = create["responses"]["201"]["headers"]
    assert created["Location"]["required"] and not created["Chute-Job-Id"]["required"]


def test_event_streams_are_described_event_by_event(client: FlaskClient) -> None:
    doc = document(client)
    schemas = doc["components"]["schemas"]
    data = schemas["JobEventFrame"]["properties"]["data"]
    assert data["contentMediaType"] == "application/json" and data["contentSchema"]["$ref"].endswith("/JobEvent")
    stream = doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert stream["$ref"].endswith("/TenantStreamFrame")
    branches = {b["$ref"].rsplit("/", 1)[1] for b in schemas["TenantStreamFrame"]["anyOf"]}
    assert branches == {"ReadyFrame", "JobEventFrame"}
