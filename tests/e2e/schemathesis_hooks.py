"""schemathesis hooks for the contract test (loaded through SCHEMATHESIS_HOOKS by the CLI).

Multipart encoding has no null: schemathesis drops a null form field, so an invalid case
(``metadata: null``) would reach chute as a valid form. Such fields are sent as the text
``null``, which is what a null is in a form, and chute must refuse it.

One fact no schema can state: a webhook URL is accepted only if its host resolves to an address
the SSRF guard allows (the network's, at request time). Valid generated cases therefore point
their webhook_url at the test's receiver on loopback, which the stack allows; cases generated as
invalid keep whatever was generated (schemathesis sometimes labels a valid form invalid: then the
guard's 422 is the refusal it expects), so the refusals are still exercised.
"""

from __future__ import annotations

import os
import re
from typing import Any

import schemathesis

from web.schemas.uploads import WEBHOOK_URL as VALID_WEBHOOK_URL

#: Where the test's webhook receiver listens (set by the test for the CLI process).
WEBHOOK_URL = os.environ.get("CHUTE_CONTRACT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
#: The operations whose bodies carry a webhook_url.
WITH_WEBHOOK = {("POST", "/v1/uploads"), ("POST", "/v1/jobs")}


@schemathesis.serializer("application/offset+octet-stream")
def tus_bytes(ctx: Any, value: Any) -> bytes:
    """tus bodies are raw bytes, like application/octet-stream."""
    data = getattr(value, "data", value)
    return data if isinstance(data, bytes) else str(data).encode()


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Null form fields as text, and valid webhook URLs at the receiver."""
    operation = (case.operation.method.upper(), case.operation.path)
    if operation == ("POST", "/v1/jobs") and isinstance(case.body, dict):
        case.body = {name: "null" if value is None else value for name, value in case.body.items()}
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if operation in WITH_WEBHOOK and positive and isinstance(case.body, dict):
        url = case.body.get("webhook_url")
        if isinstance(url, str) and re.fullmatch(VALID_WEBHOOK_URL, url):
            case.body = {**case.body, "webhook_url": WEBHOOK_URL}
    return case
