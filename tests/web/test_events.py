"""Live progress over Server-Sent Events on SQLite (the web process polls): the per-job and the
tenant streams, resuming with Last-Event-ID, heartbeats, and the bounds on open streams."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from models.settings import Settings, configure
from tests.conftest import TenantKeys
from tests.support.files import sample_jpeg
from tests.support.sse import Event, parse
from tests.support.uploading import chunked_upload
from web.schemas.events import JobEventFrame, ReadyFrame, TenantStreamFrame

#: Generous bound on any one stream read in these tests (the machine is shared and loaded).
DEADLINE = 60.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return configure(dataclasses.replace(settings, sse_heartbeat_seconds=0.2, sse_poll_seconds=0.05,
                                         sse_max_stream_seconds=DEADLINE, sse_max_streams=4,
                                         sse_max_streams_per_tenant=3))  # fmt: skip


class Opened:
    """A stream opened through the test client, read event by event, closed at the end."""

    def __init__(self, client: FlaskClient, path: str, tenant: TenantKeys, last_event_id: str | None = None):
        headers = {**tenant.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
        self.response = client.get(path, headers=headers, buffered=False)
        self.events: Iterator[Event] = parse(self.response.response) if self.response.status_code == 200 else iter(())

    def until(self, predicate: Any, what: str) -> list[Event]:
        """Events (heartbeats left out) up to and including the first that satisfies ``predicate``."""
        seen: list[Event] = []
        deadline = time.monotonic() + DEADLINE
        for event in self.events:
            if event.comment is None and event.retry is None:
                seen.append(event)
                if predicate(event):
                    return seen
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no {what} in {[(e.event, e.data) for e in seen]}")

    def rest(self) -> list[Event]:
        """Everything until the server ends the stream."""
        return [e for e in self.events if e.comment is None and e.retry is None]

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def opened(client: FlaskClient) -> Iterator[Any]:
    streams: list[Opened] = []

    def open_stream(path: str, tenant: TenantKeys, last_event_id: str | None = None) -> Opened:
        streams.append(Opened(client, path, tenant, last_event_id))
        return streams[-1]

    yield open_stream
    for stream in streams:
        stream.close()


def test_a_job_stream_follows_the_job_to_its_end_and_closes(api, opened, tenant, stub_worker) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, sample_jpeg(), filename="p.jpg", chunk_size=4096, complete=False)
    status, body = api("POST", f"/v1/uploads/{out['upload_id']}/complete")
    stream = opened(f"/v1/jobs/{body['job_id']}/events", tenant)
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-store"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    events = stream.until(lambda e: e.event.startswith("job."), "terminal event")
    assert stream.rest() == []  # the server ended the stream after the terminal event

    assert events[0].event == "status" and events[0].json["job_id"] == body["job_id"]
    assert events[-1].event == "job.completed" and events[-1].json["progress"] == 1.0
    assert events[-1].json["error"] is None
    progress = [e.json["progress"] for e in events]
    assert progress == sorted(progress)
    stages = [e.json["stage"] for e in events if e.event == "stage"]
    assert stages == [s for s in ("assemble", "upload", "extract", "notify") if s in stages]  # polled: some may merge
    ids = [int(e.id) for e in events if e.id]
    assert len(ids) == len(events) and ids == sorted(ids)
    for event in events:  # each one is what the document says a job stream's event is
        JobEventFrame.model_validate({"event": event.event, "id": event.id, "data": event.data})


def test_resuming_a_finished_job_stream(api, drain, opened, tenant) -> None:  # type: ignore[no-untyped-def]
    out = chunked_upload(api, b"x" * 100, filename="a.txt", chunk_size=64)
    drain()
    first = opened(f"/v1/jobs/{out['job_id']}/events", tenant).rest()
    assert [e.event for e in first] == ["job.completed"]  # an ended job: its state, then the end

    again = opened(f"/v1/jobs/{out['job_id']}/events", tenant, last_event_id=first[0].id)
    assert again.response.status_code == 204  # seen it: an EventSource stops reconnecting
    older = opened(f"/v1/jobs/{out['job_id']}/events", tenant, last_event_id=str(int(first[0].id) - 1)).rest()
    assert [e.event for e in older] == ["job.completed"]
    junk = opened(f"/v1/jobs/{out['job_id']}/events", tenant, last_event_id="not-ours").rest()
    assert [e.event for e in junk] == ["job.completed"]


def test_the_tenant_stream_shows_its_own_jobs_only(api, opened, tenant, other_tenant, stub_worker) -> None:  # type: ignore[no-untyped-def]
    mine = opened("/v1/events", tenant)
    theirs = opened("/v1/events", other_tenant)
    ready = mine.until(lambda e: True, "ready")[0]
    assert ready.event == "ready" and ready.json["resume_from"] == int(ready.id)
    framed = TenantStreamFrame.model_validate({"event": ready.event, "id": ready.id, "data": ready.data})
    assert isinstance(framed.root, ReadyFrame)  # the document's first event of a tenant stream
    assert theirs.until(lambda e: True, "ready")[0].event == "ready"

    job_id = chunked_upload(api, b"y" * 300, filename="b.txt", chunk_size=100)["job_id"]
    events = mine.until(lambda e: e.event == "job.completed", "the job's end")
    assert {e.json["job_id"] for e in events} == {job_id}

    as_other = lambda *args, **kwargs: api(*args, key=other_tenant, **kwargs)  # noqa: E731
    other_job = chunked_upload(as_other, b"z" * 10, filename="c.txt", chunk_size=16)["job_id"]
    seen = theirs.until(lambda e: e.event == "job.completed", "the other tenant's job")
    assert {e.json["job_id"] for e in seen} == {other_job}


def test_the_tenant_stream_resumes_from_last_event_id(api, drain, opened, tenant) -> None:  # type: ignore[no-untyped-def]
    ready = opened("/v1/events", tenant).until(lambda e: True, "ready")[0]
    job_ids = {chunked_upload(api, bytes([n]) * 50, filename=f"{n}.txt", chunk_size=16)["job_id"] for n in range(3)}
    drain()
    # Away while they ran: reconnecting from the ready event's id gives each job as it is now.
    resumed = opened("/v1/events", tenant, last_event_id=ready.id)
    done: set[str] = set()
    for event in resumed.until(lambda e: e.event == "job.completed" and done.add(e.json["job_id"]) is None
                               and done == job_ids, "all three jobs' end"):  # fmt: skip
        assert event.json["job_id"] in job_ids
        assert int(event.id) > int(ready.id)


def test_heartbeats_keep_an_idle_stream_open(api, opened, tenant) -> None:  # type: ignore[no-untyped-def]
    stream = opened("/v1/events", tenant)
    comments = 0
    for event in stream.events:
        comments += event.comment is not None
        if comments == 2:
            break
    assert comments == 2


def test_streams_are_bounded_per_tenant_and_per_process(client, opened, tenant, other_tenant) -> None:  # type: ignore[no-untyped-def]
    held = [opened("/v1/events", tenant) for _ in range(3)]
    assert all(s.response.status_code == 200 for s in held)
    over = opened("/v1/events", tenant)
    assert over.response.status_code == 429 and over.response.headers["Retry-After"]
    assert over.response.get_json()["error"]["code"] == "too_many_streams"

    fourth = opened("/v1/events", other_tenant)
    assert fourth.response.status_code == 200
    full = opened("/v1/events", other_tenant)
    assert full.response.status_code == 503 and full.response.headers["Retry-After"]
    assert full.response.get_json()["error"]["code"] == "too_many_streams"

    held[0].close()  # a closed stream gives its place back
    assert opened("/v1/events", other_tenant).response.status_code == 200


def test_another_tenants_job_and_no_key(api, opened, tenant, other_tenant, client) -> None:  # type: ignore[no-untyped-def]
    job_id = chunked_upload(api, b"q" * 10, filename="q.txt", chunk_size=16)["job_id"]
    for _ in range(3):
        stream = opened(f"/v1/jobs/{job_id}/events", other_tenant)
        assert stream.response.status_code == 404
        assert stream.response.get_json()["error"]["code"] == "job_not_found"
    assert client.get("/v1/events").status_code == 401
    # the 404s gave their places back: the tenant's three are all free
    assert all(opened("/v1/events", other_tenant).response.status_code == 200 for _ in range(3))


def test_a_stream_ends_after_its_longest_time(settings, opened, tenant) -> None:  # type: ignore[no-untyped-def]
    configure(dataclasses.replace(settings, sse_max_stream_seconds=0.5))
    started = time.monotonic()
    events = opened("/v1/events", tenant).rest()  # returns because the server ends the stream
    assert [e.event for e in events] == ["ready"]
    assert time.monotonic() - started < DEADLINE


def test_an_upload_token_follows_only_the_jobs_it_made(api, client, opened, tenant, stub_worker) -> None:  # type: ignore[no-untyped-def]
    def mint() -> TenantKeys:
        response = client.post("/v1/upload-tokens", json={}, headers=tenant.headers)
        assert response.status_code == 201, response.get_json()
        return TenantKeys("token", tenant.tenant_id, response.get_json()["token"], "")

    token, other = mint(), mint()
    as_token = lambda *args, **kwargs: api(*args, key=token, **kwargs)  # noqa: E731
    stream = opened("/v1/events", token)
    assert stream.until(lambda e: True, "ready")[0].event == "ready"
    chunked_upload(api, b"k" * 100, filename="key.txt", chunk_size=64)  # the API key's job: not the token's
    mine = chunked_upload(as_token, b"t" * 100, filename="token.txt", chunk_size=64)["job_id"]
    events = stream.until(lambda e: e.event == "job.completed" and e.json["job_id"] == mine, "the token's job")
    assert {e.json["job_id"] for e in events} == {mine}
    assert opened(f"/v1/jobs/{mine}/events", token).rest()[-1].event == "job.completed"
    assert opened(f"/v1/jobs/{mine}/events", other).response.status_code == 404
