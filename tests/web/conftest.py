from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import TenantKeys


@pytest.fixture
def api(client: FlaskClient, tenant: TenantKeys):  # type: ignore[no-untyped-def]
    """``api(method, path, json=, data=, headers=)`` → (status, JSON body) as the tenant."""

    def call(method: str, path: str, *, json: Any = None, data: Any = None, headers: dict[str, str] | None = None,
             key: TenantKeys | None = None) -> tuple[int, Any]:  # fmt: skip
        response = client.open(
            path, method=method, json=json, data=data, headers={**(key or tenant).headers, **(headers or {})}
        )
        return response.status_code, response.get_json(silent=True)

    return call
