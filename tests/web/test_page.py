"""The page at / is served by the app itself, with its assets, under a strict Content-Security-Policy."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def test_the_page_and_its_assets_are_served_without_a_credential(client: FlaskClient) -> None:
    page = client.get("/")
    html = page.get_data(as_text=True)
    page.close()
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert set(assets) == {"/static/app.js", "/static/app.css"}
    assert "<script>" not in html and "style=" not in html  # nothing inline: the policy forbids it
    for path in assets:
        asset = client.get(path)
        assert asset.status_code == 200 and asset.get_data()
        asset.close()
        assert asset.headers["Cache-Control"] == "no-cache"  # revalidated: an upgrade is never half-loaded


def test_the_page_is_in_the_api_description(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["paths"]["/"]["get"]["operationId"] == "getPage"
    assert doc["paths"]["/"]["get"]["security"] == []
