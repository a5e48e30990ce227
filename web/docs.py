"""/docs: Swagger UI over /openapi.json, served entirely by chute (no CDN: works offline).

The assets come from the ``flask-swagger-ui`` package (a dependency), which ships Swagger UI's
distribution build; nothing minified is copied into this repository, and upgrading the package
upgrades the page. Only its static files are used: the page itself is ours, so it can turn on the
Bearer box's persistence and "try it out", and the asset route takes exactly the files it needs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Literal

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from web.contract import Reply, operation

bp = Blueprint("docs", __name__)

#: Swagger UI's distribution files, as the installed package ships them.
ASSETS_DIR = Path(flask_swagger_ui.__file__).parent / "dist"
#: The files the page loads, and their types.
ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
#: How long browsers may keep an asset: they change only when the package is upgraded.
ASSET_MAX_AGE = 24 * 3600

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chute API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{css}"><link rel="icon" type="image/png" href="{icon}">
<style>body{{margin:0}}</style></head>
<body><div id="swagger-ui"></div>
<script src="{bundle}"></script><script src="{preset}"></script>
<script>
window.ui = SwaggerUIBundle({config});
</script></body></html>"""


class DocsAsset(BaseModel):
    """One of Swagger UI's files."""

    asset: Literal["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"] = (
        Field(description="a file of Swagger UI's distribution")
    )


@bp.get("/docs")
@operation(
    "getDocs",
    tags=["service"],
    summary="The API's documentation, interactive",
    description="Swagger UI over /openapi.json, served by chute itself: paste an API key in Authorize, "
    "then try any operation.",
    responses={200: Reply(None, "an HTML page", media_type="text/html", schema={"type": "string"})},
    auth=None,
)
def docs() -> ResponseReturnValue:
    config = {
        "url": url_for("service.openapi"),
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
        "tryItOutEnabled": True,
        "displayOperationId": True,
        "validatorUrl": None,  # Swagger UI would otherwise send the document to a public validator
    }
    page = PAGE.format(
        css=html.escape(url_for("docs.asset", asset="swagger-ui.css")),
        icon=html.escape(url_for("docs.asset", asset="favicon-32x32.png")),
        bundle=html.escape(url_for("docs.asset", asset="swagger-ui-bundle.js")),
        preset=html.escape(url_for("docs.asset", asset="swagger-ui-standalone-preset.js")),
        config=json.dumps(config).replace("<", "\\u003c"),
    )
    return Response(page, mimetype="text/html")


@bp.get("/docs/assets/<any(" + ", ".join(f'"{name}"' for name in ASSETS) + "):asset>")
@operation(
    "getDocsAsset",
    tags=["service"],
    summary="A file of the documentation page",
    description="Swagger UI's own files, from the installed flask-swagger-ui package.",
    path=DocsAsset,
    responses={200: Reply(None, "the file", media_type="*/*", schema={"type": "string", "format": "binary"})},
    auth=None,
)
def asset(asset: str) -> ResponseReturnValue:
    response = send_from_directory(ASSETS_DIR, asset, mimetype=ASSETS[asset], max_age=ASSET_MAX_AGE)
    return response
