"""The ``chute`` command line, run as a user would, on a SQLite database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import REPO, chute_env


def chute(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "web.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return chute_env(os.environ, database_url=f"sqlite:///{tmp_path}/cli.db", staging_dir=str(tmp_path / "s"),
                     storage_url=f"file://{tmp_path}/o")  # fmt: skip


def test_migrate_keys_rotate_and_cleanup(env: dict[str, str]) -> None:
    assert chute(env, "migrate").returncode == 0
    created = chute(env, "keys", "create", "--tenant", "acme", "--json")
    assert created.returncode == 0, created.stderr
    keys = json.loads(created.stdout)
    assert keys["tenant"] == "acme" and keys["api_key"].startswith("chute_")
    assert keys["webhook_secret"].startswith("whsec_")
    again = json.loads(chute(env, "keys", "create", "--tenant", "acme", "--json").stdout)
    assert again["api_key"] != keys["api_key"] and again["webhook_secret"] == keys["webhook_secret"]
    rotated = json.loads(chute(env, "keys", "rotate-secret", "--tenant", "acme", "--json").stdout)
    assert rotated["webhook_secret"] not in (keys["webhook_secret"], "")
    missing = chute(env, "keys", "rotate-secret", "--tenant", "nobody")
    assert missing.returncode == 1 and missing.stderr.strip() == "chute: no tenant named 'nobody'"
    swept = chute(env, "cleanup")
    assert swept.returncode == 0
    assert json.loads(swept.stdout) == {"expired_uploads": 0, "resent_jobs": 0, "resumed_jobs": 0,
                                        "announced_jobs": 0, "cleanups": 0, "leftovers": 0}  # fmt: skip


def test_worker_refuses_unknown_stages(env: dict[str, str]) -> None:
    result = chute(env, "worker", "--queues", "upload", "bogus")
    assert result.returncode == 2 and "unknown stage" in result.stderr


def test_help_lists_every_command(env: dict[str, str]) -> None:
    out = chute(env, "--help").stdout
    for command in ("dev", "web", "worker", "migrate", "keys", "cleanup"):
        assert command in out


def test_tenant_quotas_and_retention_and_key_listing(env: dict[str, str]) -> None:
    assert chute(env, "migrate").returncode == 0
    chute(env, "keys", "create", "--tenant", "acme", "--name", "laptop", "--json")
    shown = chute(env, "tenants", "set", "--tenant", "acme", "--max-open-uploads", "3", "--retention-days", "30")
    assert shown.returncode == 0, shown.stderr
    out = json.loads(shown.stdout)
    assert out["limits"]["open_uploads"] == 3 and out["limits"]["retention_days"] == 30
    assert out["usage"] == {"open_uploads": 0, "staged_bytes": 0, "jobs_in_flight": 0}
    listed = json.loads(chute(env, "keys", "list", "--tenant", "acme", "--json").stdout)
    assert [(k["name"], k["revoked_at"], k["last_used_at"]) for k in listed] == [("laptop", None, None)]
