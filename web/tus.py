"""tus 1.0.0 at ``/v1/tus`` (creation) and ``/v1/tus/{upload_id}``: one view per verb.

Protocol rules are checked up front (web/tus_protocol.py), storage sits behind
web/tus_store.py. Extensions: creation, creation-with-upload, creation-defer-length,
expiration, checksum (sha1, sha256), termination, concatenation. Uppy (@uppy/tus),
tus-js-client, tuspy and the mobile SDKs upload here unchanged; a browser authenticates with
an upload token. When an upload's last byte is stored, the answer names the job it started in
``Chute-Job-Id`` and ``Chute-Job-Url`` (exposed through CORS, and repeated by HEAD).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from flask.typing import ResponseReturnValue

from actors.url_guard import REFUSED
from models import tus
from models.db import session_scope
from models.errors import BadRequest
from models.settings import current_settings as settings
from web import schemas
from web.auth import credential, require_tenant, tenant_id
from web.contract import Body, Reply, operation
from web.errors import error_response
from web.schemas.tus import (
    HEAD_HEADERS,
    HEAD_STATE_HEADERS,
    UPLOAD_HEADERS,
    UPLOAD_STATE_HEADERS,
    TusCreateHeaders,
    TusHeaders,
    TusPatchHeaders,
)
from web.scope import admit_length, admit_upload, max_file_size
from web.staging_io import body_stream
from web.tus_protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    JOB_ID_HEADER,
    JOB_URL_HEADER,
    OFFSET_OCTET_STREAM,
    TUS_VERSION,
    TusError,
    check_body_type,
    check_version,
    declared,
    encode_metadata,
    has_body,
    http_date,
    parse_checksum,
    parse_concat,
    parse_metadata,
    upload_length,
)
from web.tus_store import TusStore, UploadInfo
from web.uploads import check_webhook_url

PREFIX = "/v1/tus"
bp = Blueprint("tus", __name__, url_prefix=PREFIX)
#: The file name of an upload whose metadata names none.
DEFAULT_FILENAME = "upload"


@bp.before_request
def protocol_and_credential() -> None:
    """OPTIONS is public (server discovery); everything else speaks 1.0.0 and authenticates."""
    if request.method == "OPTIONS":
        return
    check_version(request)
    require_tenant()


@bp.after_request
def tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status_code == 412 or request.method == "OPTIONS":
        response.headers["Tus-Version"] = TUS_VERSION
    return response


@bp.errorhandler(TusError)
def tus_error(error: TusError) -> ResponseReturnValue:
    return error_response(error.status, error.code, error.message, error.details)


def _store() -> TusStore:
    return TusStore(tenant_id(), credential().creator)


def _upload_url(upload_id: str) -> str:
    return url_for("tus.head", upload_id=upload_id, _external=True)


def _headers(info: UploadInfo) -> dict[str, str]:
    """What every answer about an upload says: offset, expiry and, once started, its job."""
    headers = {"Upload-Offset": str(info.offset)}
    if info.job_id is None:
        headers["Upload-Expires"] = http_date(info.expires_at)
    else:
        headers[JOB_ID_HEADER] = info.job_id
        headers[JOB_URL_HEADER] = url_for("jobs.show", job_id=info.job_id, _external=True)
    return headers


def _body_limit() -> None:
    """tus bodies stream to disk, bounded by the upload's length: allow one as large as a file."""
    cfg = settings()
    request.max_content_length = max(cfg.max_request_size, cfg.max_upload_size)


def _body() -> Any:
    """The PATCH body, read straight from the socket under gunicorn (werkzeug's stream otherwise)."""
    return body_stream(request.environ, request.stream)


@bp.route("", methods=["OPTIONS"], endpoint="options")
@bp.route("/<upload_id:upload_id>", methods=["OPTIONS"], endpoint="options_upload")
def options(upload_id: str | None = None) -> ResponseReturnValue:
    """The server's capabilities (no credential needed)."""
    return Response(status=204, headers={
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(settings().max_upload_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    })  # fmt: skip


#: Error codes of the creation and PATCH answers, by status.
WRITE_ERRORS = {
    400: ["invalid_header", "invalid_metadata", "checksum_algorithm_unsupported", "too_many_chunks"],
    403: ["token_scope", "token_fixed_field", "token_files_exhausted", "final_upload"],
    404: ["upload_not_found"],
    409: ["offset_mismatch"],
    410: ["upload_expired"],
    412: ["tus_version_unsupported"],
    413: ["file_too_large", "upload_length_exceeded", "token_size_exhausted"],
    415: ["unsupported_media_type", "type_not_allowed"],
    422: ["invalid_filename", "metadata_too_large", "invalid_field", REFUSED],
    460: ["checksum_mismatch"],
}


@bp.route("", methods=["POST"], provide_automatic_options=False)
@operation(
    "tusCreate", tags=["tus"], summary="Open a tus upload (creation, creation-with-upload, defer-length, concat)",
    description="tus 1.0.0 creation. A body (application/offset+octet-stream) is stored at offset 0. "
    "A final upload (Upload-Concat: final;<urls>) is made of finished partial uploads and starts its job at once.",
    headers=TusCreateHeaders, body=Body(OFFSET_OCTET_STREAM, "the first bytes (creation-with-upload)", required=False),
    responses={201: Reply(None, "the upload is open", headers={"Location": "the upload's URL", **UPLOAD_HEADERS},
                          optional_headers=UPLOAD_STATE_HEADERS)},
    errors={**WRITE_ERRORS, 400: [*WRITE_ERRORS[400], "invalid_concat", "partial_unfinished"]},
)
def create(headers: TusCreateHeaders) -> ResponseReturnValue:
    """creation, creation-with-upload, creation-defer-length and concatenation."""
    concat = parse_concat(headers.upload_concat, PREFIX)
    meta = declared(parse_metadata(headers.upload_metadata))
    webhook_url = check_webhook_url(meta.webhook_url)
    metadata = schemas.metadata(meta.metadata)
    store = _store()
    job_id = None
    with session_scope() as session:
        if concat is not None and concat.kind == tus.FINAL:
            if headers.upload_length is not None:
                raise BadRequest("a final upload's length is the sum of its parts", code="invalid_header",
                                 details={"header": "Upload-Length"})  # fmt: skip
            total = store.concat_size(session, concat.parts)
            scoped = admit_upload(session, size=total, content_type=meta.content_type, webhook_url=webhook_url,
                                  metadata=metadata, reserve_bytes=False)  # fmt: skip
            upload = store.concatenate(session, concat.parts, total,
                                       filename=schemas.filename(meta.filename or DEFAULT_FILENAME),
                                       content_type=meta.content_type, **scoped)  # fmt: skip
        else:
            length = upload_length(headers.upload_length, headers.upload_defer_length)
            partial = concat is not None
            scoped = admit_upload(session, size=length, content_type=meta.content_type, webhook_url=webhook_url,
                                  metadata=metadata, files=0 if partial else 1)  # fmt: skip
            upload = store.new_upload(session, filename=schemas.filename(meta.filename or DEFAULT_FILENAME),
                                      size=length, content_type=meta.content_type,
                                      concat=tus.PARTIAL if partial else None, **scoped)  # fmt: skip
        if tus.finished(upload) and upload.concat != tus.PARTIAL:
            job_id = store.start_job(session, upload)
        info = UploadInfo.of(upload)
    if job_id is not None:
        store.publish(job_id)
    if concat is None or concat.kind != tus.FINAL:
        if has_body(request):
            _body_limit()
            info = store.write_chunk(info.id, 0, _body(), content_length=request.content_length,
                                     checksum=parse_checksum(headers.upload_checksum),
                                     max_size=max_file_size(settings().max_upload_size))  # fmt: skip
    return Response(status=201, headers={"Location": _upload_url(info.id), **_headers(info)})


@bp.route("/<upload_id:upload_id>", methods=["HEAD"], provide_automatic_options=False)
@operation(
    "tusHead", tags=["tus"], summary="Where a tus upload stands",
    description="Upload-Offset is the bytes on disk (resume from there), with Upload-Length or "
    "Upload-Defer-Length, Upload-Metadata and Upload-Concat. A HEAD answer has no body, errors included.",
    headers=TusHeaders,
    responses={200: Reply(None, "the upload's state", headers={**UPLOAD_HEADERS, **HEAD_HEADERS},
                          optional_headers={**UPLOAD_STATE_HEADERS, **HEAD_STATE_HEADERS})},
    errors={404: ["upload_not_found"], 410: ["upload_expired"], 412: ["tus_version_unsupported"]},
)  # fmt: skip
def head(upload_id: str, headers: TusHeaders) -> ResponseReturnValue:
    """Where the upload stands: the truth about the bytes on disk, never cached."""
    info = _store().get_info(upload_id)
    answer: dict[str, str] = {**_headers(info), "Cache-Control": "no-store"}
    if info.size is None:
        answer["Upload-Defer-Length"] = "1"
    else:
        answer["Upload-Length"] = str(info.size)
    answer["Upload-Metadata"] = encode_metadata({"filename": info.filename, "filetype": info.content_type})
    if info.concat == tus.PARTIAL:
        answer["Upload-Concat"] = "partial"
    elif info.concat == tus.FINAL:
        answer["Upload-Concat"] = "final;" + " ".join(_upload_url(part) for part in info.parts)
        answer["Upload-Offset"] = str(info.size)
    return Response(status=200, headers=answer)


@bp.route("/<upload_id:upload_id>", methods=["PATCH"], provide_automatic_options=False)
@operation(
    "tusPatch", tags=["tus"], summary="Append bytes to a tus upload",
    description="The body goes at Upload-Offset (409 elsewhere). With Upload-Checksum, a mismatch is 460 and "
    "nothing is kept; without one, a body cut off midway keeps what reached the disk (HEAD says how much). "
    "The last byte starts the job: Chute-Job-Id and Chute-Job-Url name it.",
    headers=TusPatchHeaders, body=Body(OFFSET_OCTET_STREAM, "bytes from Upload-Offset on"),
    responses={204: Reply(None, "stored", headers=UPLOAD_HEADERS, optional_headers=UPLOAD_STATE_HEADERS)},
    errors=WRITE_ERRORS,
)
def patch(upload_id: str, headers: TusPatchHeaders) -> ResponseReturnValue:
    """Append the body at ``Upload-Offset`` (409 elsewhere); 460 and nothing kept on a checksum mismatch."""
    check_body_type(request)
    checksum = parse_checksum(headers.upload_checksum)
    store = _store()
    if headers.upload_length is not None:
        store.declare_length(upload_id, headers.upload_length, admit_length)
    _body_limit()
    info = store.write_chunk(upload_id, headers.upload_offset, _body(), content_length=request.content_length,
                             checksum=checksum, max_size=max_file_size(settings().max_upload_size))  # fmt: skip
    return Response(status=204, headers=_headers(info))


@bp.route("/<upload_id:upload_id>", methods=["DELETE"], provide_automatic_options=False)
@operation(
    "tusTerminate", tags=["tus"], summary="Terminate a tus upload",
    description="Cancels the upload (and its job, if it has one that has not ended) and removes its bytes.",
    headers=TusHeaders, responses={204: Reply(None, "terminated", headers={"Tus-Resumable": "1.0.0"})},
    errors={404: ["upload_not_found"], 409: ["job_finished"], 412: ["tus_version_unsupported"]},
)
def terminate(upload_id: str, headers: TusHeaders) -> ResponseReturnValue:
    """termination: cancel the upload (and its job) and remove its bytes."""
    _store().terminate(upload_id)
    return Response(status=204)
