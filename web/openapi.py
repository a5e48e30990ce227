"""The OpenAPI 3.1 document, written from the operations declared on the views (``web.contract``).

Nothing here describes an endpoint by hand: paths, parameters, bodies and responses all come from
the declarations and their pydantic models, so the document is the code's own description. The
limits that are settings (largest upload, chunk size bounds) are written as the running server
has them, so a generated client or a fuzzer knows exactly what this server accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from models.settings import current_settings
from web import converters
from web.contract import Body, Operation, Reply, operation_of
from web.schemas import jobs as job_schemas
from web.schemas import tokens as token_schemas
from web.schemas import tus as tus_schemas
from web.schemas import uploads as upload_schemas
from web.schemas.common import ErrorBody
from web.schemas.webhooks import WEBHOOK_EVENTS, WEBHOOK_HEADERS, WebhookEvent

REF_TEMPLATE = "#/components/schemas/{model}"
#: Flask's own converters → JSON Schema of the path parameter (chute's are in ``web.converters``).
CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 0},
    "default": {"type": "string"},
    "string": {"type": "string"},
    "path": {"type": "string"},
    **converters.SCHEMAS,
}
_RULE_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
STATUS_TEXT = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 410: "Gone", 412: "Precondition failed (tus: Tus-Resumable is not 1.0.0)", 413: "Too large",
    415: "Unsupported media type", 422: "Invalid", 429: "Too many requests", 460: "Checksum mismatch (tus)",
    503: "A dependency is unavailable; retry after Retry-After", 507: "Insufficient storage",
}  # fmt: skip
#: Headers some error statuses carry.
ERROR_HEADERS: dict[int, dict[str, str]] = {
    401: {"WWW-Authenticate": 'Bearer realm="chute"'},
    412: {"Tus-Version": "the tus versions this server speaks: 1.0.0"},
    503: {"Retry-After": "seconds to wait before trying again"},
}
#: Where gunicorn answers by itself, before chute sees the request (its bodies are not JSON).
GUNICORN_ERRORS: dict[str, str] = {
    "400": "a malformed request line or header (HTTP syntax)",
    "414": "a request line over 4094 bytes (limit_request_line)",
    "431": "more than 100 header fields, or one over 8190 bytes (limit_request_fields, limit_request_field_size)",
    "501": "a Transfer-Encoding other than chunked",
}
DESCRIPTION = """File intake: resumable uploads through a verified pipeline to object storage.

Every request under `/v1` carries `Authorization: Bearer <api key>`. Every 4xx and 5xx that chute
answers is `{"error": {"code", "message", "details"}}`, with `code` stable and snake_case (each
response below lists the codes it can carry), including Flask's own 404, 405 (with `Allow`) and 413.
An id of the wrong shape matches no route: 404 `not_found`.

Where gunicorn answers by itself, before chute runs, the body is gunicorn's short HTML page, not
the JSON error shape: 400 for malformed HTTP, 414 for a request line over 4094 bytes, 431 for more
than 100 header fields or one over 8190 bytes, 501 for an unsupported Transfer-Encoding (see
`x-gunicorn-errors`). A buffering proxy in front (deploy/nginx.conf) may answer 413/502/504 itself.

A job's ending is POSTed to its `webhook_url` as a Standard Webhooks event: see `webhooks`.
"""
#: Functions that write settings-bound limits (largest upload, chunk sizes, files per request) into the document.
LIMITS = (upload_schemas.document_limits, job_schemas.document_limits, tus_schemas.document_limits,
          token_schemas.document_limits)  # fmt: skip
#: Tags in the order /docs lists them, with what each groups.
TAGS = [
    {"name": "uploads", "description": "Chunked, resumable uploads: open, send chunks in any order, complete."},
    {"name": "jobs", "description": "One-shot and batch uploads, job status, results and downloads."},
    {"name": "webhooks", "description": "Delivery attempts of a job's webhook events, and re-sending them."},
    {"name": "tenant", "description": "The calling tenant's own settings."},
    {"name": "ops", "description": "For operators: the ops page and its API (the admin token)."},
    {"name": "service", "description": "Liveness, readiness, metrics and this description."},
]


class Route(NamedTuple):
    """One method of one URL rule, as the document lists it."""

    path: str  #: the OpenAPI path: ``/v1/jobs/{job_id}``
    rule: str  #: Flask's rule, with converters: ``/v1/jobs/<job_id:job_id>``
    method: str
    endpoint: str
    operation: Operation | None


def documented_routes(app: Flask) -> Iterable[Route]:
    """Every route and method the app serves (but Flask's static files, OPTIONS, and HEAD beside GET)."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        view = app.view_functions[rule.endpoint]
        methods = (rule.methods or set()) - {"OPTIONS"}  # preflights and tus discovery: protocol, not API
        if "GET" in methods:
            methods.discard("HEAD")  # Flask answers HEAD for every GET
        for method in sorted(methods):
            yield Route(path, rule.rule, method.lower(), rule.endpoint, operation_of(view))


def _path_parameters(path_rule: str, op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    declared = _model_properties(op.path, schemas) if op.path else {}
    params = []
    for match in _RULE_ARG.finditer(path_rule):
        name = match.group("name")
        schema = declared.get(name) or CONVERTER_SCHEMAS.get(match.group("converter") or "default", {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": dict(schema)})
    return params


def _model_properties(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, by_alias=True)
    schemas.update(schema.pop("$defs", {}))
    return dict(schema.get("properties", {}))


def _model_parameters(model: type[BaseModel], where: str, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, by_alias=True)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        param: dict[str, Any] = {"name": name, "in": where, "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the ``null`` of an optional field: a query or header parameter is
    absent or a string, never JSON null."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) != 1 or len(branches) == len(prop.get("anyOf", [])):
        return prop
    merged = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**branches[0], **merged}


#: (model, mode) → the JSON Schema reference pydantic gave it in components/schemas.
Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]


def _operation_document(path_rule: str, op: Operation, schemas: dict[str, Any], refs: Refs) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": list(op.tags),
        "summary": op.summary,
        "description": op.description or op.summary,
    }
    path_params = _path_parameters(path_rule, op, schemas)
    params = list(path_params)
    if op.query is not None:
        params += _model_parameters(op.query, "query", schemas)
    if op.headers is not None:
        params += _model_parameters(op.headers, "header", schemas)
    if params:
        doc["parameters"] = params
    if isinstance(op.body, Body):
        doc["requestBody"] = {
            "required": op.body.required,
            "description": op.body.description,
            "content": {op.body.media_type: {"schema": dict(op.body.schema)}},
        }
        if op.body.encoding:
            doc["requestBody"]["content"][op.body.media_type]["encoding"] = dict(op.body.encoding)
    elif op.body is not None:
        schema = refs[(op.body, "validation")]
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": reply.description or "OK"}
        if reply.model is not None:
            entry["content"] = {reply.media_type: {"schema": refs[(reply.model, _mode(reply))]}}
        elif reply.schema is not None:
            entry["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
        if reply.headers or reply.optional_headers:
            entry["headers"] = {**_headers(reply.headers, required=True),
                                **_headers(reply.optional_headers, required=False)}  # fmt: skip
        if reply.links:
            entry["links"] = {name: dict(link) for name, link in reply.links.items()}
        responses[str(status)] = entry
    errors = op.all_errors()
    if path_params:  # an id of the wrong shape matches no route
        errors[404] = tuple(sorted({*errors.get(404, ()), "not_found"}))
    for status, codes in sorted(errors.items()):
        entry = {
            "description": f"{STATUS_TEXT.get(status, 'Error')}; error.code is one of: {', '.join(codes)}",
            "content": {"application/json": {"schema": _error_schema(codes)}},
        }
        if status in ERROR_HEADERS:
            entry["headers"] = _headers(ERROR_HEADERS[status], required=status in (401, 412))
        responses[str(status)] = entry
    doc["responses"] = responses
    doc["security"] = [{op.auth: []}] if op.auth else []
    return doc


def _headers(headers: Any, *, required: bool) -> dict[str, Any]:
    return {name: {"description": text, "required": required, "schema": {"type": "string"}}
            for name, text in headers.items()}  # fmt: skip


def _error_schema(codes: tuple[str, ...]) -> dict[str, Any]:
    """The error body with ``error.code`` narrowed to the codes this status can carry."""
    return {
        "allOf": [
            {"$ref": REF_TEMPLATE.format(model="ErrorBody")},
            {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {"code": {"enum": list(codes)}}}},
            },
        ]
    }


def _webhooks() -> dict[str, Any]:
    """The events chute POSTs to a job's webhook_url (OpenAPI 3.1 ``webhooks``)."""
    out: dict[str, Any] = {}
    for event, summary in WEBHOOK_EVENTS.items():
        out[event] = {
            "post": {
                "operationId": "on" + "".join(part.title() for part in re.split(r"[._]", event)),
                "tags": ["webhooks"],
                "summary": summary,
                "description": "Standard Webhooks: verify `webhook-signature` over `{webhook-id}.{webhook-timestamp}."
                "{body}` with your whsec_ secret (any Standard Webhooks library does), and deduplicate on "
                "`webhook-id`, which is the same on every retry. `data` is the job as getJob shows it.",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
                    for name, text in WEBHOOK_HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {
                        "allOf": [{"$ref": REF_TEMPLATE.format(model="WebhookEvent")},
                                  {"type": "object", "properties": {"type": {"const": event}}}]}}},
                },  # fmt: skip
                "responses": {
                    "2XX": {"description": "received: delivery ends"},
                    "410": {"description": "gone: chute stops delivering to this URL"},
                    "default": {"description": "anything else, or no answer within the timeout: retried on "
                                "the schedule (honouring Retry-After) for about a day"},
                },  # fmt: skip
            }
        }
    return out


def _mode(reply: Reply) -> JsonSchemaMode:
    """How a reply's model is written: as it serializes, but an event stream's events as a client parses
    them (their ``data`` is JSON text: ``contentMediaType`` and ``contentSchema``)."""
    return "validation" if reply.media_type == "text/event-stream" else "serialization"


def _models_of(ops: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    found[(WebhookEvent, "serialization")] = None
    for op in ops:
        if isinstance(op.body, type):
            found[(op.body, "validation")] = None
        for reply in op.responses.values():
            if reply.model is not None:
                found[(reply.model, _mode(reply))] = None
    return [(model, mode) for model, mode in found]  # type: ignore[misc]


def build_document(app: Flask) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of ``app``'s declared operations."""
    routes = [route for route in documented_routes(app) if route.operation is not None]
    ops = [route.operation for route in routes if route.operation is not None]
    refs, defs = models_json_schema(_models_of(ops), ref_template=REF_TEMPLATE, by_alias=True)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        assert route.operation is not None
        doc = _operation_document(route.rule, route.operation, schemas, refs)  # type: ignore[arg-type]
        paths.setdefault(route.path, {})[route.method] = doc
    document = {
        "openapi": "3.1.0",
        "info": {"title": "chute", "version": "1", "description": DESCRIPTION},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": TAGS + [{"name": t} for t in sorted({t for op in ops for t in op.tags} - {t["name"] for t in TAGS})],
        "paths": dict(sorted(paths.items())),
        "webhooks": _webhooks(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key: `chute keys create`"},
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin token (CHUTE_ADMIN_TOKEN)"},
            },
        },
        "x-gunicorn-errors": GUNICORN_ERRORS,
    }
    for write_limits in LIMITS:
        write_limits(document, current_settings())
    return document


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document of ``app``, built once (routes and settings do not change while it runs)."""
    cached = app.extensions.get("chute_openapi")
    if cached is None:
        cached = app.extensions["chute_openapi"] = build_document(app)
    return dict(cached)
