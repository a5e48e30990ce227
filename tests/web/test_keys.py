"""Key lifecycle: listing with names and last use, revocation that every process sees at once
(even with a key cache of an hour), and webhook secrets sealed at rest with a rotatable key."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from migrations import alembic_config, upgrade
from models.db import database, session_scope
from models.sealing import SealingError, derive_key, unseal
from models.settings import configure
from models.tenant import Tenant, reseal_secrets
from tests.support import services
from web import auth


def test_keys_are_listed_with_names_and_last_use(api, tenant) -> None:  # type: ignore[no-untyped-def]
    status, body = api("GET", "/v1/keys")
    assert status == 200 and len(body["keys"]) == 1
    key = body["keys"][0]
    assert key["prefix"] == tenant.api_key[:12] and key["revoked_at"] is None
    assert key["created_at"] and key["last_used_at"]  # this very request used it
    assert tenant.api_key not in json.dumps(body)  # never the key itself


def test_a_revoked_key_stops_at_once_despite_the_cache(settings, client, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, api_key_cache_seconds=3600, revocation_check_seconds=0))
    auth.forget_cached_credentials()
    headers = tenant.headers
    assert client.get("/v1/jobs", headers=headers).status_code == 200  # now cached for an hour
    key_id = client.get("/v1/keys", headers=headers).get_json()["keys"][0]["key_id"]
    # Another tenant cannot revoke it (404, as for any id it does not own).
    assert client.delete(f"/v1/keys/{key_id}", headers=other_tenant.headers).status_code == 404
    revoked = client.delete(f"/v1/keys/{key_id}", headers=headers)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert client.get("/v1/jobs", headers=headers).status_code == 401
    assert client.get("/v1/jobs", headers=other_tenant.headers).status_code == 200


def chute(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web.cli", *args], env=env, cwd=services.REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.postgres
def test_revocation_from_the_cli_reaches_every_web_process(tmp_path: Path) -> None:
    """``chute web`` (two gunicorn workers, each with its own cache) behind its front; the key is
    revoked by another process (``chute keys revoke``): every worker refuses it soon after."""
    if not services.port_open("127.0.0.1", 5432):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with services.postgres_database() as url:
        env = services.chute_env(os.environ, database_url=url, staging_dir=str(tmp_path / "staging"),
                                 metrics_dir=str(tmp_path / "metrics"),
                                 storage_url=f"file://{tmp_path}/objects", api_key_cache_seconds="3600",
                                 secret_key="test-secret-key", sweep_interval_seconds="0")  # fmt: skip
        assert chute(env, "migrate").returncode == 0
        keys = json.loads(chute(env, "keys", "create", "--tenant", "acme", "--name", "ci", "--json").stdout)
        web, base = services.start_web(env, tmp_path, workers=2, threads=4)
        try:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {keys['api_key']}"}
            codes = {session.get(base + "/v1/jobs", headers=headers, timeout=30).status_code for _ in range(20)}
            assert codes == {200}
            listed = json.loads(chute(env, "keys", "list", "--tenant", "acme", "--json").stdout)
            assert [k["name"] for k in listed] == ["ci"] and listed[0]["last_used_at"]
            revoked = chute(env, "keys", "revoke", "--tenant", "acme", keys["api_key"][:12], "--json")
            assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
            services.wait_until(lambda: session.get(base + "/v1/jobs", headers=headers, timeout=30).status_code == 401,
                                30, what="the revoked key to be refused")  # fmt: skip
            # Fresh connections land on either worker: none of them accepts it any more.
            refused = {requests.get(base + "/v1/jobs", headers=headers, timeout=30).status_code for _ in range(20)}
            assert refused == {401}
        finally:
            web.stop()


def test_webhook_secrets_are_sealed_at_rest(settings, tenant) -> None:  # type: ignore[no-untyped-def]
    with database().engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT webhook_secret FROM tenants WHERE id = :id"), {"id": tenant.tenant_id})
        sealed = stored.scalar_one()
    assert "whsec_" not in sealed
    plain = Fernet(derive_key(settings.secret_key)).decrypt(sealed.encode()).decode()
    assert plain == tenant.webhook_secret
    assert unseal(sealed) == plain  # remembered under these keys, and only under them:
    with pytest.raises(SealingError):
        unseal(sealed, dataclasses.replace(settings, secret_key="another key"))


def test_rotating_the_secret_key(settings, tenant) -> None:  # type: ignore[no-untyped-def]
    """The documented procedure: new key current, old key in old_secret_keys, reencrypt, drop the old."""
    rotated = configure(dataclasses.replace(settings, secret_key="the new key", old_secret_keys=(settings.secret_key,)))
    with session_scope() as session:
        row = session.get(Tenant, tenant.tenant_id)
        assert row is not None and row.webhook_secret == tenant.webhook_secret  # the old key still opens it
        assert reseal_secrets(session) == 1
    configure(dataclasses.replace(rotated, old_secret_keys=()))
    with session_scope() as session:
        row = session.get(Tenant, tenant.tenant_id)
        assert row is not None and row.webhook_secret == tenant.webhook_secret


def test_the_migration_seals_existing_secrets_and_unseals_them_on_downgrade(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, "0001")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (id, name, webhook_secret, created_at) "
                             "VALUES ('ten_1', 'old', 'whsec_plain', '2026-01-01 00:00:00')"))  # fmt: skip
    upgrade(url)
    with engine.connect() as conn:
        sealed = conn.execute(sa.text("SELECT webhook_secret FROM tenants")).scalar_one()
        generation = conn.execute(sa.text("SELECT revocation_generation FROM auth_state")).scalar_one()
    assert sealed != "whsec_plain" and unseal(sealed) == "whsec_plain" and generation == 0
    command.downgrade(alembic_config(url), "0001")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT webhook_secret FROM tenants")).scalar_one() == "whsec_plain"
    engine.dispose()
