"""Report workers that die (kill -9) mid-build: the build's heartbeat stops, it is taken over
once its lease runs out (by the next request, or by a retry), and its temporary files, which
live under REPORT_DIR and never in the system's temporary folder, are removed. And forwarded
headers under gunicorn: one setting, TRUSTED_PROXIES, says whose are believed."""

from __future__ import annotations

import io
import os
import re
import secrets
import time
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.figures.revisions import month_revision
from billing_app.importer import import_file
from billing_app.models import Organisation
from billing_app.reports.queue import BUILDING, LEASE, QUEUED, jobs, record_of, state_key
from billing_app.reports.store import ReportKey
from billing_app.reports.worker import schedule_closed_months
from dev.sample_data import organisation_data
from tests.gunicorn import environment, running_gunicorn
from tests.report_worker import builds_pending, download

REPORT = "/settings/usage/report"
SLUG = "dying-msp"
ADMIN = f"admin@{SLUG}.example"


def wait_for(condition, timeout: float = 60.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(step)
    return found


def sign_in(app, client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text)[1]
    response = client.post(
        "/login", data={"email": ADMIN, "password": "demo-admin", "csrf_token": token}
    )
    assert response.status_code == 303, response.text


def import_sample(app, tenants: int, identities: int) -> ReportKey:
    """A sample organisation imported; the key of its report of the month that closed last
    (the one the worker's schedule builds too, so that it cannot compete with the test)."""
    today = today_utc()
    data = organisation_data(
        slug=SLUG, tenants=tenants, identities_per_tenant=identities, seed=19, today=today
    )
    with app.app_context():
        import_file(data)
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        revision = month_revision(organisation.id, month())
        return ReportKey.of(organisation.id, revision, month(), today)


def month() -> Month:
    return Month.of(today_utc()).previous()


def summary_total(body: bytes) -> object:
    summary = openpyxl.load_workbook(io.BytesIO(body), data_only=True)["Summary"]
    [total] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    return total[3]


def test_a_build_whose_worker_is_killed_is_taken_over_within_a_minute(
    app, client, report_queue, worker_factory
):
    assert app.config["REPORT_LEASE"] == LEASE == 30
    # Some seconds of building: long enough to be killed in the middle, every time.
    key = import_sample(app, tenants=300, identities=40)
    sign_in(app, client)
    first = worker_factory()
    url = f"{REPORT}?month={key.month}"
    assert client.get(url).status_code == 202

    def mid_build():
        record = record_of(report_queue, key)
        if record and record["state"] == BUILDING and 0 < record["written"] < record["total"]:
            return record
        return None

    record = wait_for(mid_build, timeout=120)
    scratch = Path(app.config["REPORT_DIR"]) / ".tmp" / record["token"]
    # Its temporary files (tenant and user names in them) are under REPORT_DIR, in the
    # build's own folder, and none in the system's temporary folder.
    assert wait_for(lambda: [p for p in scratch.iterdir() if p.is_file()], timeout=10)
    assert list(first.tmpdir.rglob("*")) == []

    first.kill()
    killed_at = time.monotonic()
    stuck = record_of(report_queue, key)
    assert stuck["token"] == record["token"] and stuck["state"] == BUILDING
    assert scratch.is_dir()

    second = worker_factory()
    free_again = time.monotonic()
    # The member's page keeps asking, as its browser does.
    response = download(client, url, timeout=90)
    finished = time.monotonic()
    assert response.status_code == 200, response.text
    assert finished - free_again < 60, f"taken over after {finished - free_again:.0f} s"
    # Not before its lease ran out: until then the build might have been alive.
    assert finished - killed_at > LEASE - 1
    body = response.get_data()
    assert summary_total(body) is not None
    assert jobs(app).store.path(key).read_bytes() == body
    assert second.log.count("usage report built:") >= 1

    # Nothing of either build is left: the one that took over removed what the killed one
    # left, and its own folder when it ended.
    assert not scratch.exists()
    assert second.temporary_files_left() == []
    assert list(first.tmpdir.rglob("*")) == []
    assert record_of(report_queue, key) is None


def test_retry_takes_over_an_abandoned_build_and_only_that(app, client, report_queue):
    key = import_sample(app, tenants=2, identities=2)
    sign_in(app, client)
    url = f"{REPORT}?month={key.month}"
    store = jobs(app).store
    app.config["REPORT_LEASE"] = 5.0

    def claimed(state: str, silent: float, written: int = 24, total: int = 374) -> str:
        token = secrets.token_hex(8)
        record = {"state": state, "token": token, "written": written, "total": total}
        report_queue.put(state_key(key), record | {"updated": time.time() - silent})
        return token

    # A build that beat a second ago is alive: a retry waits for it.
    alive = claimed(BUILDING, silent=1)
    assert client.get(f"{url}&retry=1").status_code == 303
    assert record_of(report_queue, key)["token"] == alive
    page = client.get(url)
    assert page.status_code == 202 and "24 of 374 sheets written" in page.text
    assert builds_pending(report_queue) == 0

    # A build silent for longer than the lease lost its worker: a retry takes it over, and
    # so does the next request of the page that refreshes itself.
    for asked in (f"{url}&retry=1", url):
        dead = claimed(BUILDING, silent=6)
        (store.scratch(dead)).mkdir(parents=True)
        (store.scratch(dead) / "tmp3x8a1").write_text("Contoso;Grace Hopper")
        client.get(asked)
        record = record_of(report_queue, key)
        assert record["token"] != dead and record["replaces"] == dead
        assert record["state"] == QUEUED
    assert builds_pending(report_queue) == 2

    # A claim still queued (its task lost before a worker started it) waits for the long
    # limit, but a retry takes it over after the lease.
    report_queue.flush()
    queued = claimed(QUEUED, silent=6, written=0, total=0)
    assert client.get(url).status_code == 202
    assert record_of(report_queue, key)["token"] == queued
    client.get(f"{url}&retry=1")
    assert record_of(report_queue, key)["token"] != queued
    assert builds_pending(report_queue) == 1


def test_the_build_that_takes_over_removes_what_the_dead_one_left(
    app, client, report_queue, worker_factory
):
    key = import_sample(app, tenants=2, identities=2)
    sign_in(app, client)
    store = jobs(app).store
    dead = secrets.token_hex(8)
    left = store.scratch(dead)
    left.mkdir(parents=True)
    (left / "tmpk2b9x0").write_text("Fabrikam;Ada Lovelace")
    record = {"state": BUILDING, "token": dead, "written": 1, "total": 3}
    report_queue.put(state_key(key), record | {"updated": time.time() - LEASE - 1})
    worker = worker_factory()
    response = download(client, f"{REPORT}?month={key.month}")
    assert response.status_code == 200
    assert not left.exists()
    assert worker.temporary_files_left() == []


def test_dead_builds_temporary_files_are_swept_on_start_and_on_schedule(
    app, report_queue, worker_factory
):
    store = jobs(app).store

    def build_folder(name: str, age: float) -> Path:
        folder = store.scratch(name)
        folder.mkdir(parents=True)
        (folder / "tmpa1b2c3").write_text("Woodgrove;Xavier")
        then = time.time() - age
        os.utime(folder, (then, then))
        return folder

    dead = build_folder("deadbeef01", age=LEASE + 5)
    alive = build_folder("cafe0002", age=1)  # another worker's build, beating
    stray = store.scratch("x").parent / "stray.txt"
    stray.write_text("not a build")
    worker = worker_factory()
    wait_for(lambda: not dead.exists(), timeout=60, step=0.2)
    wait_for(lambda: "report worker: queue" in worker.log, timeout=60, step=0.2)
    assert alive.is_dir() and not stray.exists()

    later = time.time() - LEASE - 5
    os.utime(alive, (later, later))  # its worker died since
    with app.app_context():
        schedule_closed_months(today_utc())
    assert not alive.exists()
    assert (
        store.sweep(set(), lambda *_: 0, today_utc()) == []
    )  # the kept reports' sweep leaves .tmp alone
    assert (Path(app.config["REPORT_DIR"]) / ".tmp").is_dir()


# --- Forwarded headers under gunicorn ----------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@pytest.mark.parametrize(("proxies", "believed"), [("0", False), ("1", True)])
def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    app, database_url, tmp_path, proxies, believed
):
    """gunicorn's own default trusts X-Forwarded-Proto from 127.0.0.1; with
    TRUSTED_PROXIES=0 nothing may believe it, from loopback or anywhere."""
    env = environment(
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_hex(32),
        STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(8),
        RATELIMIT_STORAGE_URI="memory://",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="1",
        TRUSTED_PROXIES=proxies,
    )
    with running_gunicorn(env, tmp_path) as server:
        status, plain, _body = server.request("GET", "/login")
        assert status == 200 and "Strict-Transport-Security" not in plain
        status, forwarded, _body = server.request("GET", "/login", headers=FORWARDED)
    assert status == 200
    assert ("Strict-Transport-Security" in forwarded) is believed
