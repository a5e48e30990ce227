"""Live progress through the real stack: PostgreSQL NOTIFY → the web process's listener → SSE."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import requests

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.files import sample_pdf
from tests.support.sse import Event, parse
from tests.support.uploading import chunked_upload

#: Generous bound on waiting for one job (the machine is shared and loaded).
DEADLINE = 120.0


@contextmanager
def stream(stack: Stack, path: str, last_event_id: str | None = None) -> Iterator[Iterator[Event]]:
    headers = {"Authorization": f"Bearer {stack.keys['api_key']}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    with requests.get(stack.base_url + path, headers=headers, stream=True, timeout=(10, 60)) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = (e for e in parse(response.iter_content(chunk_size=None)) if e.comment is None and e.retry is None)
        yield events


def events_of_job(events: Iterator[Event], job_id: str) -> list[Event]:
    """The job's events up to its terminal one (other jobs' events are skipped)."""
    seen: list[Event] = []
    deadline = time.monotonic() + DEADLINE
    for event in events:
        if event.event != "ready" and event.json["job_id"] == job_id:
            seen.append(event)
            if event.event.startswith("job."):
                return seen
        assert time.monotonic() < deadline, [e.event for e in seen]
    raise AssertionError(f"the stream ended before the job did: {[(e.event, e.data) for e in seen]}")


def test_every_stage_arrives_live_and_in_order(stack: Stack) -> None:
    with stream(stack, "/v1/events") as events:
        ready = next(events)
        assert ready.event == "ready"
        job_id = chunked_upload(stack.call, sample_pdf(), filename="live.pdf", chunk_size=1024)["job_id"]
        seen = events_of_job(events, job_id)
    # NOTIFY carries every committed change, so nothing merges: each stage shows, in order.
    assert seen[0].event == "status" and seen[0].json["status"] == "queued"
    assert [e.json["stage"] for e in seen if e.event in ("status", "stage") and e.json["stage"]] == [
        "assemble", "upload", "extract", "notify"]  # fmt: skip
    assert seen[-1].event == "job.completed" and seen[-1].json["progress"] == 1.0
    progress = [e.json["progress"] for e in seen]
    assert progress == sorted(progress)
    ids = [int(e.id or 0) for e in seen]
    assert ids == sorted(ids) and ids[0] > int(ready.id or 0)

    with stream(stack, f"/v1/jobs/{job_id}/events") as job_events:  # ended: its state, then the end
        assert [e.event for e in job_events] == ["job.completed"]


def test_resume_with_last_event_id_after_being_away(stack: Stack) -> None:
    with stream(stack, "/v1/events") as events:
        resume_from = next(events).id
    job_id = chunked_upload(stack.call, b"away " * 500, filename="away.txt", chunk_size=1024)["job_id"]
    services.wait_until(lambda: stack.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "completed", DEADLINE,
                        interval=0.2, what="the job")  # fmt: skip
    with stream(stack, "/v1/events", last_event_id=resume_from) as events:
        seen = events_of_job(events, job_id)
    assert [e.event for e in seen] == ["job.completed"]  # states, not a log: the job as it is now


def test_streams_survive_the_listener_losing_its_connection(stack: Stack) -> None:
    with stream(stack, "/v1/events") as events:
        assert next(events).event == "ready"
        dsn = stack.env["CHUTE_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chute-events'"
                " AND datname = current_database()"
            ).fetchall()
        assert killed and all(ok for (ok,) in killed)
        job_id = chunked_upload(stack.call, b"after " * 300, filename="after.txt", chunk_size=1024)["job_id"]
        seen = events_of_job(events, job_id)  # the listener reconnected and caught the stream up
    assert seen[-1].event == "job.completed"
