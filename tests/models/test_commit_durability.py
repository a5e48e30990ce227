"""``commit_without_flush`` (and its form in a statement, ``without_flush``) relaxes one
transaction's durability on PostgreSQL, and only that one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from models import job as jobs
from models.db import commit_with_flush, commit_without_flush, session_scope
from models.settings import Settings
from models.tenant import issue_key
from tests.actors.test_stages import staged_job
from tests.conftest import TenantKeys


def synchronous_commit(session) -> str:  # type: ignore[no-untyped-def]
    return str(session.execute(text("SHOW synchronous_commit")).scalar())


@pytest.mark.usefixtures("on_postgres")
def test_one_transaction_commits_without_waiting_for_the_disk() -> None:
    with session_scope() as session:
        assert synchronous_commit(session) == "on"
        commit_without_flush(session)
        assert synchronous_commit(session) == "off"
    with session_scope() as session:  # SET LOCAL: the next transaction on the pooled connection is durable again
        assert synchronous_commit(session) == "on"


@pytest.mark.usefixtures("on_postgres")
def test_a_transaction_can_take_it_back() -> None:
    with session_scope() as session:
        commit_without_flush(session)
        commit_with_flush(session)
        assert synchronous_commit(session) == "on"


def test_elsewhere_it_does_nothing(settings: Settings) -> None:
    with session_scope() as session:
        commit_without_flush(session)
        commit_with_flush(session)


@pytest.mark.usefixtures("on_postgres")
def test_a_stage_runs_start_commits_without_waiting_for_the_disk(settings: Settings) -> None:
    with session_scope() as session:
        issued = issue_key(session, "acme")
    job_id = staged_job(settings, TenantKeys(issued.tenant, issued.tenant_id, issued.api_key, issued.webhook_secret))
    with session_scope() as session:
        assert jobs.begin_stage(session, job_id, "assemble", "test:1").verdict == jobs.StageVerdict.RUN
        assert synchronous_commit(session) == "off"
    with session_scope() as session:
        assert synchronous_commit(session) == "on"
        assert jobs.advance_stage(session, job_id, "assemble", size=1) == jobs.Advance.ADVANCED
        assert synchronous_commit(session) == "on"  # the run's end waits for the disk
