"""The OpenAPI 3.1 document, written from the operations declared on the views (``web.contract``).

Nothing here describes an endpoint by hand: paths, parameters, bodies and responses all come from
the declarations and their pydantic models, so the document is the code's own description.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from web.contract import Body, Operation, operation_of
from web.schemas.common import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
#: Flask converters → JSON Schema of the path parameter.
CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 0},
    "default": {"type": "string"},
    "string": {"type": "string"},
    "path": {"type": "string"},
}
_RULE_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
STATUS_TEXT = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 410: "Gone", 413: "Too large", 415: "Unsupported media type", 422: "Invalid",
    429: "Too many requests", 503: "A dependency is unavailable; retry after Retry-After", 507: "Insufficient storage",
}  # fmt: skip


def documented_routes(app: Flask) -> Iterable[tuple[str, str, str, Operation | None]]:
    """Every (OpenAPI path, method, endpoint, operation or None) the app serves."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), rule.endpoint, operation_of(view)


def _path_parameters(path_rule: str, op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    declared = _model_properties(op.path, schemas) if op.path else {}
    params = []
    for match in _RULE_ARG.finditer(path_rule):
        name = match.group("name")
        schema = declared.get(name) or CONVERTER_SCHEMAS.get(match.group("converter") or "default", {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
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
        param: dict[str, Any] = {"name": name, "in": where, "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


#: (model, mode) → the JSON Schema reference pydantic gave it in components/schemas.
Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]


def _operation_document(path_rule: str, op: Operation, schemas: dict[str, Any], refs: Refs) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": list(op.tags),
        "summary": op.summary,
        "description": op.description or op.summary,
    }
    params = _path_parameters(path_rule, op, schemas)
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
    elif op.body is not None:
        schema = refs[(op.body, "validation")]
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": reply.description or "OK"}
        if reply.model is not None:
            entry["content"] = {reply.media_type: {"schema": refs[(reply.model, "serialization")]}}
        elif reply.schema is not None:
            entry["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
        if reply.headers:
            entry["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                for name, text in reply.headers.items()}  # fmt: skip
        responses[str(status)] = entry
    for status, codes in op.all_errors().items():
        responses[str(status)] = {
            "description": f"{STATUS_TEXT.get(status, 'Error')}; error.code is one of: {', '.join(codes)}",
            "content": {"application/json": {"schema": _error_schema(codes)}},
        }
    doc["responses"] = responses
    doc["security"] = [{op.auth: []}] if op.auth else []
    return doc


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


def _models_of(ops: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for op in ops:
        if isinstance(op.body, type):
            found[(op.body, "validation")] = None
        for reply in op.responses.values():
            if reply.model is not None:
                found[(reply.model, "serialization")] = None
    return [(model, mode) for model, mode in found]  # type: ignore[misc]


def openapi_document(app: Flask) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of ``app``'s declared operations."""
    routes = [(path, method, op) for path, method, _, op in documented_routes(app) if op is not None]
    refs, defs = models_json_schema(_models_of(op for _, _, op in routes), ref_template=REF_TEMPLATE, by_alias=True)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in routes:
        paths.setdefault(path, {})[method] = _operation_document(path, op, schemas, refs)  # type: ignore[arg-type]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chute",
            "version": "1",
            "description": "File intake: resumable uploads through a verified pipeline to object storage.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin token (CHUTE_ADMIN_TOKEN)"},
            },
        },
    }


#: /docs: the description rendered as a plain list, with no script fetched from elsewhere.
DOCS_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>chute API</title>
<style>body{font:15px system-ui;max-width:60em;margin:2em auto}code{background:#eee;padding:0 .3em}</style>
</head><body><h1>chute API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a>.</p><ul id="ops"></ul>
<script>fetch('/openapi.json').then(r=>r.json()).then(d=>{const ul=document.getElementById('ops');
for(const [p,item] of Object.entries(d.paths))for(const [m,op] of Object.entries(item)){if(m==='parameters')continue;
const li=document.createElement('li');
li.innerHTML='<code>'+m.toUpperCase()+' '+p+'</code> '+op.summary;ul.appendChild(li);}});
</script></body></html>"""
