"""The page for people at ``/``: static files in ``web/static`` (plain HTML, CSS and JavaScript that
call the API; nothing to build, nothing from a CDN), served by every ``chute web`` and ``chute dev``.

The page keeps a credential in the browser, so it is served with a Content-Security-Policy that
lets only chute's own scripts run: injected markup could not read the key.
"""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from web.contract import Reply, operation

bp = Blueprint("page", __name__)

#: Scripts, styles and API calls from chute itself only; images may also be blobs and signed
#: object-store URLs (another origin); no framing (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data: https: http:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/")
@operation(
    "getPage",
    tags=["page"],
    summary="The page for people: upload files, follow them live, read results",
    responses={200: Reply(None, "the page (HTML); its scripts and styles are under /static/", media_type="text/html",
                          schema={"type": "string"})},  # fmt: skip
    auth=None,
)
def index() -> ResponseReturnValue:
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response

