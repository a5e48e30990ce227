"""schemathesis hooks for the contract test (loaded through SCHEMATHESIS_HOOKS by the CLI).

Multipart encoding has no null: schemathesis drops a null form field, so an invalid case
(``metadata: null``) would reach chute as a valid form. Such fields are sent as the text
``null``, which is what a null is in a form, and chute must refuse it.

One fact no schema can state: a webhook URL is accepted only if its host resolves to an address
the SSRF guard allows (the network's, at request time). Valid generated cases therefore point
their webhook_url at the test's receiver on loopback, which the stack allows; cases generated as
invalid keep whatever was generated (schemathesis sometimes labels a valid form invalid: then the
guard's 422 is the refusal it expects), so the refusals are still exercised.

tus speaks in headers whose relations no parameter schema can state: a creation names its length
in exactly one of Upload-Length and Upload-Defer-Length (a final upload in neither), metadata keys
are unique, and the values of the keys chute reads (filename, filetype, webhook_url, metadata) are
validated like createUpload's fields. Generated creations are fitted to those rules (one of the
two length headers kept, repeated keys dropped, the read keys given valid values), whatever the
schema thinks of them: a case invalid by the schema stays invalid by its other headers, and an
Upload-Metadata that breaks its pattern is sent as generated.

Revoking a key is real: a revoked fuzzer's key would make every later call 401. A call that would
revoke the fuzzer's own key (the stateful phase finds it through listApiKeys) revokes one of the
stack's throwaway keys instead; every other key id is sent as generated.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
from collections.abc import MutableMapping
from typing import Any

import schemathesis

from web.schemas.tus import UPLOAD_METADATA
from web.schemas.uploads import WEBHOOK_URL as VALID_WEBHOOK_URL

#: Where the test's webhook receiver listens (set by the test for the CLI process).
WEBHOOK_URL = os.environ.get("CHUTE_CONTRACT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
#: The operations whose bodies carry a webhook_url.
WITH_WEBHOOK = {("POST", "/v1/uploads"), ("POST", "/v1/jobs"), ("POST", "/v1/upload-tokens")}

#: The fuzzer's own key, and the keys revokeApiKey may revoke in its place (set by the test).
OWN_KEY_ID = os.environ.get("CHUTE_CONTRACT_OWN_KEY_ID", "")
THROWAWAY_KEY_IDS = itertools.cycle(os.environ.get("CHUTE_CONTRACT_THROWAWAY_KEY_IDS", "").split(",") or [""])


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
    if operation == ("POST", "/v1/tus") and case.headers is not None:
        _fit_tus_creation(case.headers)
    return case


#: Valid values of the Upload-Metadata keys chute reads (the test's receiver for webhook_url).
TUS_READ_VALUES = {"filename": "fuzz.bin", "name": "fuzz.bin", "filetype": "application/octet-stream",
                   "type": "application/octet-stream", "webhook_url": WEBHOOK_URL, "metadata": "{}"}  # fmt: skip


def _fit_tus_creation(headers: MutableMapping[str, Any]) -> None:
    """Fit a tus creation's headers to the rules between them (see the module's docstring), in place
    (schemathesis keeps headers case-insensitively, and revalidates what a hook changed)."""
    if str(headers.get("Upload-Concat", "")).startswith("final;"):
        headers.pop("Upload-Length", None)
    elif "Upload-Length" in headers:
        headers.pop("Upload-Defer-Length", None)
    else:
        headers["Upload-Defer-Length"] = "1"
    metadata = headers.get("Upload-Metadata")
    if isinstance(metadata, str) and re.fullmatch(UPLOAD_METADATA, metadata):
        pairs: dict[str, str] = {}
        for pair in metadata.split(","):
            key, _, value = pair.partition(" ")
            if key in TUS_READ_VALUES:
                value = base64.b64encode(TUS_READ_VALUES[key].encode()).decode()
            pairs.setdefault(key, f"{key} {value}" if value else key)
        headers["Upload-Metadata"] = ",".join(pairs.values())


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """revokeApiKey never revokes the fuzzer's own key: a throwaway key of its tenant goes instead."""
    if case.operation.method.upper() != "DELETE" or case.operation.path != "/v1/keys/{key_id}":
        return
    if OWN_KEY_ID and (case.path_parameters or {}).get("key_id") == OWN_KEY_ID:
        case.path_parameters["key_id"] = next(THROWAWAY_KEY_IDS)
