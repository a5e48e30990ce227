"""The page at / in real headless Chromium: drop files, watch them upload and run live, resume
after a reload, list and filter jobs, read a job's result and replay its webhook."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.browser import PageErrors, drop_files, poll, wait_for
from tests.support.files import corrupt_pdf, sample_jpeg, sample_pdf
from tests.support.uploading import chunked_upload

#: Generous bound on a job's whole run seen from the page (the machine is shared and loaded).
JOB_SECONDS = 120


def sign_in(page: Any, stack: Stack, *, chunk_size: int | None = None, parallel: int | None = None) -> None:
    settings = {"chute.chunkSize": chunk_size, "chute.parallel": parallel}
    script = "".join(f"localStorage.setItem({k!r}, {str(v)!r});" for k, v in settings.items() if v)
    if script:
        page.context.add_init_script(script)
    page.goto(stack.base_url + "/")
    page.fill("#credential", stack.keys["api_key"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#home:not([hidden])")
    page.wait_for_selector("#live[data-state=open]")


def record_card_changes(page: Any) -> None:
    """Remember every stage and upload percentage each file card shows, however briefly."""
    page.evaluate("""() => {
        window.seen = {};
        new MutationObserver((changes) => {
            for (const change of changes) {
                const card = change.target, name = card.dataset.name;
                const seen = (window.seen[name] ||= { stages: [], uploaded: [] });
                const stage = card.dataset.stage, uploaded = Number(card.dataset.uploaded);
                if (stage && seen.stages[seen.stages.length - 1] !== stage) seen.stages.push(stage);
                const last = seen.uploaded[seen.uploaded.length - 1];
                if (!Number.isNaN(uploaded) && last !== uploaded) seen.uploaded.push(uploaded);
            }
        }).observe(document.getElementById('files'), { subtree: true, attributes: true,
                                                        attributeFilter: ['data-stage', 'data-uploaded'] });
    }""")


def test_drop_a_pdf_and_a_jpeg_and_watch_them_run(page: Any, stack: Stack) -> None:
    sign_in(page, stack, chunk_size=16 * 1024)
    record_card_changes(page)
    drop_files(page, "#drop", [("report.pdf", "application/pdf", sample_pdf()),
                               ("photo.jpg", "image/jpeg", sample_jpeg())])  # fmt: skip
    wait_for(page, "document.querySelectorAll('.file[data-state=completed]').length === 2", JOB_SECONDS,
             what="both files to complete")  # fmt: skip
    seen = page.evaluate("window.seen")
    for name in ("report.pdf", "photo.jpg"):
        assert seen[name]["uploaded"][-1] == 100
        assert seen[name]["uploaded"] == sorted(seen[name]["uploaded"])
        stages = seen[name]["stages"]
        order = ["assemble", "upload", "extract", "notify"]
        assert stages == sorted(stages, key=order.index), stages
    assert len(seen["photo.jpg"]["uploaded"]) > 2  # nine chunks: the bar moved on the way to 100 %
    # The stages arrived live: each card went through several of them on its way.
    assert max(len(seen[name]["stages"]) for name in seen) >= 2, seen
    thumbnail = page.locator('.file[data-name="photo.jpg"] img.thumbnail')
    thumbnail.wait_for()
    wait_for(page, "document.querySelector('.file[data-name=\"photo.jpg\"] img.thumbnail').naturalWidth > 0",
             what="the thumbnail to load")  # fmt: skip
    assert page.text_content("#summary-text") == "2 files: 2 done"

    job_id = page.get_attribute('.file[data-name="photo.jpg"]', "data-job-id")
    status, job = stack.call("GET", f"/v1/jobs/{job_id}")
    assert job["status"] == "completed" and job["filename"] == "photo.jpg"


def test_reload_mid_upload_resumes_where_it_stopped(page: Any, page_errors: PageErrors, stack: Stack) -> None:
    page_errors.allow("net::ERR_CONNECTION_RESET")  # the cuts below
    chunk = 16 * 1024
    data = bytes(range(256)) * (chunk * 12 // 256)  # 12 chunks
    sign_in(page, stack, chunk_size=chunk, parallel=1)
    state = {"let_through": 4, "cut": 0}

    def cut_after_four(route: Any) -> None:
        # The first chunks go through, then the connection drops on every try, as on a train.
        if state["let_through"] > 0:
            state["let_through"] -= 1
            route.continue_()
        else:
            state["cut"] += 1
            route.abort("connectionreset")

    page.route("**/v1/uploads/*/chunks/*", cut_after_four)
    with page.expect_response(lambda r: r.url.endswith("/v1/uploads") and r.request.method == "POST") as created:
        drop_files(page, "#drop", [("big.bin", "application/octet-stream", data)])
    upload_id = created.value.json()["upload_id"]
    poll(page, lambda: state["cut"] > 0, JOB_SECONDS, "the fifth chunk to be cut")
    assert stack.call("GET", f"/v1/uploads/{upload_id}")[1]["bytes_received"] == 4 * chunk
    assert page.get_attribute('.file[data-name="big.bin"]', "data-uploaded") == "33"

    finished: list[str] = []
    page.on("requestfinished", lambda r: "/chunks/" in r.url and finished.append(r.url))
    page.reload()
    page.unroute("**/v1/uploads/*/chunks/*")  # the link is back
    # The page finds the upload again by itself (the file was kept in IndexedDB) and sends the rest.
    page.locator('.file[data-name="big.bin"]').wait_for()
    wait_for(page, "document.querySelector('.file[data-name=\"big.bin\"]').dataset.state === 'completed'",
             JOB_SECONDS, what="the resumed upload's job to complete")  # fmt: skip
    indexes = sorted(int(url.rsplit("/", 1)[1]) for url in finished)
    assert indexes == list(range(4, 12)), indexes  # only what the server did not have, each once
    status, upload = stack.call("GET", f"/v1/uploads/{upload_id}")
    assert upload["status"] == "complete" and upload["job_id"]
    status, job = stack.call("GET", f"/v1/jobs/{upload['job_id']}")
    assert job["status"] == "completed" and job["size"] == len(data)


def test_job_list_filters_by_status_and_follows_new_jobs(page: Any, stack: Stack) -> None:
    bad = chunked_upload(stack.call, corrupt_pdf(), filename="broken.pdf", chunk_size=4096)["job_id"]
    services.wait_until(lambda: stack.call("GET", f"/v1/jobs/{bad}")[1]["status"] == "failed", JOB_SECONDS,
                        interval=0.2, what="the corrupt PDF to fail")  # fmt: skip
    sign_in(page, stack)
    page.goto(stack.base_url + "/#/jobs")
    page.select_option("#status-filter", "failed")
    # The failed job is in the list before the filter too: wait for the filtered list itself.
    wait_for(page, "(rows => rows.length > 0 && rows.every(r => r.dataset.status === 'failed'))"
                   "([...document.querySelectorAll('#job-rows tr')])", what="only failed jobs listed")  # fmt: skip
    page.locator(f'#job-rows tr[data-job-id="{bad}"]').wait_for()

    page.select_option("#status-filter", "")
    fresh = chunked_upload(stack.call, b"new while watching\n" * 100, filename="fresh.txt", chunk_size=1024)["job_id"]
    row = page.locator(f'#job-rows tr[data-job-id="{fresh}"]')
    row.wait_for()  # a job made elsewhere shows up live
    wait_for(page, f"document.querySelector('#job-rows tr[data-job-id=\"{fresh}\"]').dataset.status === 'completed'",
             JOB_SECONDS, what="the new row to complete live")  # fmt: skip


def test_a_listing_that_arrives_after_the_filter_changed_is_dropped(page: Any, stack: Stack) -> None:
    """The unfiltered first page of jobs is held in flight while the filter changes: when it
    arrives last, it must not fill the filtered list with jobs of another status."""
    bad = chunked_upload(stack.call, corrupt_pdf(), filename="late-broken.pdf", chunk_size=4096)["job_id"]
    good = chunked_upload(stack.call, b"completed\n" * 100, filename="late-good.txt", chunk_size=1024)["job_id"]
    for job_id, status in ((bad, "failed"), (good, "completed")):
        services.wait_until(lambda j=job_id, s=status: stack.call("GET", f"/v1/jobs/{j}")[1]["status"] == s,
                            JOB_SECONDS, interval=0.2, what=f"{job_id} to be {status}")  # fmt: skip
    sign_in(page, stack)
    held: list[Any] = []
    listing = re.compile(r"/v1/jobs\?")
    page.route(listing, lambda route: route.continue_() if "status=" in route.request.url else held.append(route))
    page.goto(stack.base_url + "/#/jobs")
    poll(page, lambda: held, what="the unfiltered listing in flight")
    page.select_option("#status-filter", "failed")
    page.locator(f'#job-rows tr[data-job-id="{bad}"]').wait_for()
    for route in held:
        route.continue_()
    for route in held:
        assert route.request.response() is not None  # it arrived, and the page has had it
    page.wait_for_timeout(500)
    statuses = page.evaluate("[...document.querySelectorAll('#job-rows tr')].map(r => r.dataset.status)")
    assert statuses and set(statuses) == {"failed"}, statuses
    assert page.locator(f'#job-rows tr[data-job-id="{good}"]').count() == 0
    page.unroute(listing)


def test_a_new_jobs_row_ends_where_the_job_did_though_it_moved_while_the_page_fetched_it(
    page: Any, stack: Stack
) -> None:
    """A job runs through its stages faster than the page's GET of it. Here the worker is
    stopped while the job is made, so the page's GET is answered while the job is queued; that
    answer is held until the job has completed. The events that came meanwhile must still move
    the row to completed (they were dropped: CI met the row stuck at an early state)."""
    first = chunked_upload(stack.call, b"listed first\n" * 100, filename="first.txt", chunk_size=1024)["job_id"]
    services.wait_until(lambda: stack.call("GET", f"/v1/jobs/{first}")[1]["status"] == "completed", JOB_SECONDS,
                        interval=0.2, what="the first job to complete")  # fmt: skip
    sign_in(page, stack)
    page.goto(stack.base_url + "/#/jobs")
    page.locator(f'#job-rows tr[data-job-id="{first}"]').wait_for()
    held: list[tuple[Any, Any]] = []
    one_job = re.compile(r"/v1/jobs/job_[0-9a-f]+$")
    page.route(one_job, lambda route: held.append((route, route.fetch())))  # answered now, passed on later
    assert stack.worker.process is not None
    os.killpg(stack.worker.process.pid, signal.SIGSTOP)
    try:
        fresh = chunked_upload(stack.call, b"moved meanwhile\n" * 100, filename="moved.txt",
                               chunk_size=1024)["job_id"]  # fmt: skip
        poll(page, lambda: held, what="the page's GET of the new job")
    finally:
        os.killpg(stack.worker.process.pid, signal.SIGCONT)
    assert held[0][1].json()["status"] == "queued"
    services.wait_until(lambda: stack.call("GET", f"/v1/jobs/{fresh}")[1]["status"] == "completed", JOB_SECONDS,
                        interval=0.2, what="the new job to complete")  # fmt: skip
    page.wait_for_timeout(1000)  # its events reach the page while the GET is held
    for route, response in held:
        route.fulfill(response=response)
    wait_for(page, f"document.querySelector('#job-rows tr[data-job-id=\"{fresh}\"]')?.dataset.status === 'completed'",
             30, what="the new row to show the job completed")  # fmt: skip
    assert page.locator(f'#job-rows tr[data-job-id="{fresh}"]').count() == 1
    page.unroute(one_job)


def hooks(stack: Stack) -> list[Any]:
    return [r for r in stack.receiver.requests if r.path == "/page-hook"]


def test_a_jobs_page_shows_its_result_and_replays_its_webhook(page: Any, stack: Stack) -> None:
    hook = stack.receiver.url("/page-hook")
    job_id = chunked_upload(stack.call, sample_jpeg(), filename="hooked.jpg", chunk_size=8192,
                            webhook_url=hook)["job_id"]  # fmt: skip
    services.wait_until(lambda: len(hooks(stack)) >= 1, JOB_SECONDS, interval=0.2,
                        what="the first webhook")  # fmt: skip
    sign_in(page, stack)
    page.goto(f"{stack.base_url}/#/jobs/{job_id}")
    page.locator("#job-result h2").first.wait_for()
    assert page.text_content("#job-status") == "completed"
    wait_for(page, "[...document.querySelectorAll('#job-result img')].some(i => i.naturalWidth > 0)",
             what="a thumbnail on the job's page")  # fmt: skip
    names = page.eval_on_selector_all(".downloads a", "links => links.map(a => a.textContent)")
    assert names[0] == "original" and "thumb_256" in names
    page.locator("#job-deliveries table tbody tr").first.wait_for()
    page.click("#replay")
    services.wait_until(lambda: len(hooks(stack)) >= 2, JOB_SECONDS, interval=0.2,
                        what="the replayed webhook")  # fmt: skip
