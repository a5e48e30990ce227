"""The API's OpenAPI description (served at /openapi.json) and a page that renders it (/docs)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}


def _op(summary: str, ok: str, *codes: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": summary}}
    responses.update({code: _ERROR for code in codes})
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    return op


def _json(properties: dict[str, str], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": required,
                    "properties": {k: {"type": v} for k, v in properties.items()},
                }
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    upload_body = _json(
        {
            "filename": "string",
            "size": "integer",
            "content_type": "string",
            "sha256": "string",
            "chunk_size": "integer",
            "webhook_url": "string",
            "metadata": "object",
        },
        ["filename", "size"],
    )
    chunk_body = {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
    batch_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "webhook_url": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"},
                    },
                }
            }
        },
    }
    paths: dict[str, dict[str, Any]] = {
        "/v1/uploads": {
            "post": _op("Open a chunked upload", "201", "400", "401", "413", "415", "422", body=upload_body)
        },
        "/v1/uploads/{upload_id}": {
            "get": _op("Resume info: received and missing chunks", "200", "401", "404"),
            "delete": _op("Cancel the upload and remove staged chunks", "202", "401", "404", "409"),
        },
        "/v1/uploads/{upload_id}/chunks/{index}": {
            "put": _op(
                "Send one chunk (optional Content-Digest: sha-256=:b64:)",
                "200",
                "400",
                "401",
                "404",
                "409",
                "413",
                "422",
                body=chunk_body,
            )
        },
        "/v1/uploads/{upload_id}/complete": {
            "post": _op("Create the job (idempotent)", "202", "401", "404", "409", "503")
        },
        "/v1/uploads/{upload_id}/status": {"get": _op("The upload's job", "200", "401", "404", "409")},
        "/v1/jobs": {
            "get": _op("List jobs, newest first (status, limit, cursor)", "200", "400", "401"),
            "post": _op("One-shot and batch upload", "202", "400", "401", "413", "422", "503", body=batch_body),
        },
        "/v1/jobs/{job_id}": {
            "get": _op("A job's status, stage and progress", "200", "401", "404"),
            "delete": _op("Cancel a job", "202", "401", "404", "409"),
        },
        "/v1/jobs/{job_id}/result": {"get": _op("What was extracted", "200", "401", "404", "409")},
        "/v1/jobs/{job_id}/download": {"get": _op("The stored file (redirect or stream)", "200", "401", "404", "409")},
        "/v1/jobs/{job_id}/derivatives/{name}": {"get": _op("A derivative", "200", "401", "404", "409")},
        "/v1/jobs/{job_id}/deliveries": {
            "get": _op("Every webhook delivery attempt", "200", "401", "404"),
            "post": _op("Replay the last webhook event now", "202", "401", "404", "409"),
        },
        "/v1/webhook-secret/rotate": {
            "post": _op("Rotate the webhook signing secret (both sign during the overlap)", "201", "401")
        },
        "/healthz": {"get": {"summary": "Process up", "security": [], "responses": {"200": {"description": "up"}}}},
        "/readyz": {
            "get": {
                "summary": "Dependencies reachable",
                "security": [],
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "metrics"}}}
        },
    }
    for path, item in paths.items():
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            item["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "integer" if p == "index" else "string"}}
                for p in params
            ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "chute", "version": "1", "description": "File intake: resumable uploads to object storage."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {
                                            "code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "details": {"type": "object"},
                                        },
                                    }
                                },
                            }
                        }
                    },
                }
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
