"""Typed operations: one declaration per route gives both its request validation and its OpenAPI entry.

A view is declared once::

    @bp.post("")
    @operation("createUpload", tags=["uploads"], summary="Open a chunked upload",
               body=UploadCreate, responses={201: Reply(UploadCreated, headers={"Location": "…"})},
               errors={409: ["upload_not_receiving"]})
    def create(body: UploadCreate) -> tuple[UploadCreated, int, dict[str, str]]: ...

The wrapper parses the JSON body, query string and headers through their pydantic models (bad
input is a 4xx in the error shape, never a 500), calls the view with ``body=``, ``query=``,
``headers=`` and the path arguments, and renders the model it returns. ``web.openapi`` reads the
same declarations to write the OpenAPI document, so the spec cannot drift from the code.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError

from models.errors import BadRequest, Invalid, TooLarge, UnsupportedMediaType

#: A JSON request body larger than this is refused by its declared length, before it is read
#: (upload bodies have limits of their own; JSON bodies are small).
MAX_JSON_BYTES = 64 * 1024
#: Deepest nesting of arrays and objects a JSON body may have.
MAX_JSON_DEPTH = 32

#: Error codes any operation with a JSON body can answer, by status.
JSON_BODY_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("invalid_json",),
    413: ("body_too_large",),
    415: ("unsupported_media_type",),
    422: ("invalid_field", "missing_field"),
}
#: Error codes the query model can answer.
QUERY_ERRORS: dict[int, tuple[str, ...]] = {400: ("invalid_query",)}
#: Error codes the header model can answer.
HEADER_ERRORS: dict[int, tuple[str, ...]] = {400: ("invalid_header",)}
#: Error codes every bearer-authenticated operation can answer (429: web.ratelimit).
AUTH_ERRORS: dict[int, tuple[str, ...]] = {
    401: ("missing_api_key", "unauthorized", "invalid_token", "token_expired"),
    403: ("token_scope",),  # an upload token (web/auth.py) outside what it may call
    429: ("rate_limited",),
}
#: Error codes every authenticated operation can answer: it reads the database (a key, a row).
DATABASE_ERRORS: dict[int, tuple[str, ...]] = {503: ("database_unavailable",)}

#: What a declared view may return: a model, (model, status), (model, status, headers), or a Response.
View = Callable[..., Any]
#: What Flask routes: the wrapper that parses the request and renders the view's result.
Route = Callable[..., ResponseReturnValue]


@dataclass(frozen=True)
class Body:
    """A request body that is not a JSON model: raw bytes, multipart form data, a tus PATCH.

    Parameters:
        media_type: the content type the operation takes.
        description: what the body is.
        schema: its JSON Schema for the document (default: binary).
        required: whether a body must be sent.
        encoding: OpenAPI ``encoding`` of multipart fields (e.g. a JSON-valued form field).
    """

    media_type: str
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string", "format": "binary"})
    required: bool = True
    encoding: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One documented response.

    Parameters:
        model: the body's model (None: no JSON body, e.g. a redirect or 204).
        description: what it means.
        media_type: its content type; a non-JSON reply (a stream, a file) has ``model`` None.
        headers: response headers it always carries, name → description.
        optional_headers: response headers it carries in some states only, name → description.
        schema: the body's JSON Schema when it is not a model (e.g. a text/event-stream).
        links: OpenAPI links from this response to the operations a client calls next
            (name → {"operationId", "parameters"}); schemathesis follows them in its stateful phase.
    """

    model: type[BaseModel] | None = None
    description: str = ""
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    optional_headers: Mapping[str, str] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """Everything declared about one route and method; see :func:`operation`."""

    operation_id: str
    tags: tuple[str, ...]
    summary: str
    description: str
    body: type[BaseModel] | Body | None
    query: type[BaseModel] | None
    headers: type[BaseModel] | None
    path: type[BaseModel] | None
    responses: Mapping[int, Reply]
    errors: Mapping[int, tuple[str, ...]]
    auth: str | None

    @property
    def success_status(self) -> int:
        return min(status for status in self.responses if status < 400)

    def all_errors(self) -> dict[int, tuple[str, ...]]:
        """The error codes each status can carry: the declared ones plus those of the parsing layer."""
        merged: dict[int, set[str]] = {status: set(codes) for status, codes in self.errors.items()}
        implied: list[Mapping[int, tuple[str, ...]]] = []
        if isinstance(self.body, type):
            implied.append(JSON_BODY_ERRORS)
        if self.query is not None:
            implied.append(QUERY_ERRORS)
        if self.headers is not None:
            implied.append(HEADER_ERRORS)
        if self.auth == "bearer":  # the admin scheme declares its own codes
            implied.append(AUTH_ERRORS)
        if self.auth is not None:
            implied.append(DATABASE_ERRORS)
        for extra in implied:
            for status, codes in extra.items():
                merged.setdefault(status, set()).update(codes)
        return {status: tuple(sorted(codes)) for status, codes in sorted(merged.items())}


def operation(
    operation_id: str,
    *,
    tags: Sequence[str],
    summary: str,
    description: str = "",
    body: type[BaseModel] | Body | None = None,
    query: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel] | Reply],
    errors: Mapping[int, Sequence[str]] | None = None,
    auth: str | None = "bearer",
) -> Callable[[View], Route]:
    """Declare a view's contract; put it under the blueprint's route decorator.

    Parameters:
        operation_id: the OpenAPI operationId (camelCase, unique).
        tags: the groups it is listed under in /docs.
        summary, description: what it does, for people.
        body: a model for a JSON body, or :class:`Body` for any other body.
        query, headers: models of the query string and of request headers (a field's alias is
            the header's name); the view gets them as ``query=`` and ``headers=``.
        path: a model documenting the path parameters (their patterns); Flask parses them.
        responses: status → a model or a :class:`Reply`; exactly the statuses it answers below 400.
        errors: status → the error codes it can answer with (parsing and auth codes are added).
        auth: the security scheme ("bearer") or None for a public route.
    """
    replies = {status: r if isinstance(r, Reply) else Reply(r) for status, r in responses.items()}
    if not any(status < 400 for status in replies):
        raise ValueError(f"{operation_id}: declare at least one success response")
    op = Operation(
        operation_id=operation_id,
        tags=tuple(tags),
        summary=summary,
        description=description,
        body=body,
        query=query,
        headers=headers,
        path=path,
        responses=replies,
        errors={status: tuple(codes) for status, codes in (errors or {}).items()},
        auth=auth,
    )

    def decorate(view: View) -> Route:
        @functools.wraps(view)
        def wrapper(**path_args: Any) -> ResponseReturnValue:
            kwargs = dict(path_args)
            if isinstance(op.body, type):
                kwargs["body"] = parse_json_body(op.body, op.errors.get(422))
            if op.query is not None:
                kwargs["query"] = parse_model(op.query, request.args.to_dict(flat=True), "query", op.errors.get(400))
            if op.headers is not None:
                kwargs["headers"] = parse_headers(op.headers, op.errors.get(400))
            return render(op, view(**kwargs))

        wrapper.__chute_operation__ = op  # type: ignore[attr-defined]
        return wrapper

    return decorate


def operation_of(view: Callable[..., Any]) -> Operation | None:
    """The contract declared on a view function, if any."""
    return getattr(view, "__chute_operation__", None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Python's JSON parser without NaN, Infinity, and numbers too large to be finite.

    Raises:
        ValueError: not such JSON (also RecursionError for absurd nesting; callers bound the size).
    """
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def _finite_float(text: str) -> float:
    """JSON numbers are finite: ``1e400`` would become infinity, which no column or webhook can carry."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_body(model: type[BaseModel], codes: Sequence[str] | None = None) -> BaseModel:
    """Read, bound and validate the request's JSON body.

    Raises:
        UnsupportedMediaType: not application/json.
        TooLarge: over :data:`MAX_JSON_BYTES` (by its declared length, before reading).
        BadRequest: not JSON, NaN or Infinity, or nested deeper than :data:`MAX_JSON_DEPTH`.
        Invalid: valid JSON that the model refuses (``details.errors`` says where and why); its
            code is a validator's ``PydanticCustomError`` type when that is one of ``codes``.
    """
    if not request.is_json:
        raise UnsupportedMediaType("send application/json", code="unsupported_media_type")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise TooLarge(f"a JSON body may be at most {MAX_JSON_BYTES} bytes", code="body_too_large")
    raw = request.stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge(f"a JSON body may be at most {MAX_JSON_BYTES} bytes", code="body_too_large")
    try:
        value = loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels", code="invalid_json")
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    try:
        # Strict in JSON mode: "1" is not an integer, but an ISO 8601 string is a datetime.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as e:
        kind = e.errors()[0]["type"]
        if kind == "json_invalid":  # what Python's parser takes and pydantic's refuses: lone surrogates
            raise BadRequest("the body is not valid JSON", code="invalid_json") from None
        code = kind if codes and kind in codes else "missing_field" if kind == "missing" else "invalid_field"
        raise Invalid(_first_message(e), code=code, details={"errors": _error_list(e)}) from None


def parse_model(
    model: type[BaseModel], values: Mapping[str, Any], where: str, codes: Sequence[str] | None = None
) -> BaseModel:
    """Validate query arguments, headers or form fields (strings) through ``model``.

    A validator may raise ``PydanticCustomError(code, message)`` with one of ``codes`` (the
    operation's declared codes) to answer with that code instead of the generic one.

    Raises:
        BadRequest: ``invalid_query`` or ``invalid_header`` naming the parameters at fault.
        Invalid: ``invalid_field`` for form fields (they are the body, like a JSON body's fields).
    """
    try:
        return model.model_validate(values)
    except ValidationError as e:
        details = {"errors": _error_list(e), "in": where}
        if where == "form":
            raise Invalid(_first_message(e), code="invalid_field", details=details) from None
        kind = e.errors()[0]["type"]
        code = kind if codes and kind in codes else f"invalid_{where}"
        raise BadRequest(_first_message(e), code=code, details=details) from None


def parse_headers(model: type[BaseModel], codes: Sequence[str] | None = None) -> BaseModel:
    """The request headers ``model`` declares (by alias, matched case-insensitively), validated."""
    values = {}
    for name, info in model.model_fields.items():
        for header in _header_names(name, info):
            value = request.headers.get(header)
            if value:  # an empty field is as good as absent (RFC 9110 allows empty values)
                values[header] = value
                break
    return parse_model(model, values, "header", codes)


def _header_names(name: str, info: Any) -> list[str]:
    """The header names a field reads: its alias, or each string of its ``validation_alias`` choices."""
    choices = getattr(info.validation_alias, "choices", None)
    if choices is not None:
        return [choice for choice in choices if isinstance(choice, str)]
    if isinstance(info.validation_alias, str):
        return [info.validation_alias]
    return [info.alias or name]


def _error_list(error: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without the input (it may be large or hold bytes that cannot be shown)."""
    return [
        {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False, include_context=False)[:20]
    ]


def _first_message(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def render(op: Operation, result: Any) -> ResponseReturnValue:
    """Turn what a view returned (a model, optionally with status and headers) into a response."""
    if isinstance(result, Response):
        return result
    status, headers = op.success_status, None
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else None
    if isinstance(result, BaseModel):
        # pydantic writes the JSON itself (in Rust): no dict, no second walk through Flask's encoder.
        response = Response(result.model_dump_json(by_alias=True), mimetype="application/json")
    elif result is None:
        response = Response(status=status)
    else:
        response = jsonify(result)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response
