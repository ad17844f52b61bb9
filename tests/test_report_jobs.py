"""Reports built once by a real worker process on the report queue (the embedded SQLite file
and the machine's Redis), kept under REPORT_DIR, and the report URL's 202 protocol."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from billing_app import config
from billing_app.extensions import db
from billing_app.figures.cache import month_summary
from billing_app.figures.calculator import month_usage
from billing_app.figures.months import Month, today_utc
from billing_app.figures.revisions import month_revision
from billing_app.importer import import_file
from billing_app.models import Organisation
from billing_app.reports.queue import jobs, record_of, state_key
from billing_app.reports.store import ReportKey, ReportStore
from billing_app.reports.worker import (
    CLOSED_MONTHS_SCHEDULE,
    Progress,
    schedule_closed_months,
    tenant_usages,
)
from billing_app.reports.writer import write_report
from tests.factories import ALWAYS, PASSWORD, add_tenant, make_organisation
from tests.report_worker import builds_pending, download

REPORT = "/settings/usage/report"
HTMX = {"HX-Request": "true"}
JANUARY = Month(2026, 1)
# A build of January in the worker's log (its schedule may build the month that closed last).
JANUARY_BUILT = " month=2026-01 sheets="
SLUG = "jobs-msp"


def organisation_file(identities: int = 2, unit_price: str = "3.00") -> dict:
    """An organisation in the import format: one admin, two tenants, `identities` users in
    the first."""
    users = [
        {
            "id": f"u-{n}",
            "display_name": f"User {n}",
            "user_principal_name": f"user{n}@contoso.example",
            "billable_periods": [{"from": "2026-01-01", "until": None}],
        }
        for n in range(identities)
    ]
    return {
        "organisation": {
            "slug": SLUG,
            "name": "Jobs MSP",
            "billing_email": "billing@jobs.example",
            "prices": [{"from_month": "2026-01", "unit_price": unit_price, "currency": "usd"}],
        },
        "members": [
            {"email": "admin@jobs.example", "name": "Ada", "role": "admin", "password": PASSWORD}
        ],
        "tenants": [
            {
                "id": "t-1",
                "name": "Contoso",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000001",
                "onboarded_on": "2026-01-01",
                "offboarded_on": None,
                "pauses": [],
                "identities": users,
            },
            {
                "id": "t-2",
                "name": "Fabrikam",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000002",
                "onboarded_on": "2026-01-20",
                "offboarded_on": None,
                "pauses": [],
                "identities": [],
            },
        ],
    }


@pytest.fixture
def imported(app):
    """Jobs MSP imported through the importer, its admin signed-in as `auth` would."""
    with app.app_context():
        import_file(organisation_file())
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        db.session.expunge(organisation)
    return organisation


@pytest.fixture
def admin(auth, imported):
    auth.login("admin@jobs.example")
    return auth


def kept_files(app, month: str = "2026-01") -> list[Path]:
    """The files kept or being written for `month`: the worker's schedule may meanwhile build
    the month that closed last, whose files these tests do not look at."""
    return sorted(p for p in Path(app.config["REPORT_DIR"]).rglob(f"*{month}*") if p.is_file())


def total_cost(body: bytes) -> Decimal:
    summary = openpyxl.load_workbook(io.BytesIO(body), data_only=True)["Summary"]
    [total] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    return Decimal(str(total[3]))


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)


# --- Kept reports ----------------------------------------------------------------------------


def test_second_download_is_a_send_of_the_same_file(
    app, admin, queue_backend, report_worker, report_queue
):
    first = download(admin.client, f"{REPORT}?month=2026-01")
    assert first.status_code == 200
    body = first.get_data()
    assert total_cost(body) == Decimal("6.00")
    [kept] = kept_files(app)
    assert kept.read_bytes() == body
    assert re.fullmatch(
        r"\d+/2026-01\.r\d+\.xlsx", kept.relative_to(app.config["REPORT_DIR"]).as_posix()
    )

    report_worker.stop()
    again = admin.client.get(f"{REPORT}?month=2026-01")
    assert again.status_code == 200
    assert again.get_data() == body
    assert (
        again.headers["Content-Disposition"] == "attachment; filename=usage-jobs-msp-2026-01.xlsx"
    )
    assert builds_pending(report_queue) == 0
    assert kept_files(app) == [kept]


def test_an_import_that_changes_usage_builds_afresh_and_removes_the_old_file(
    app, admin, queue_backend, report_worker
):
    first = download(admin.client, f"{REPORT}?month=2026-01").get_data()
    [old] = kept_files(app)

    with app.app_context():
        summary = import_file(organisation_file())  # the same file: nothing changes
    assert kept_files(app) == [old]
    assert admin.client.get(f"{REPORT}?month=2026-01").get_data() == first, summary

    with app.app_context():
        import_file(organisation_file(identities=3))
    again = download(admin.client, f"{REPORT}?month=2026-01")
    assert again.status_code == 200
    assert total_cost(first) == Decimal("6.00") and total_cost(again.get_data()) == Decimal("9.00")
    [new] = kept_files(app)
    assert new != old and not old.exists()


def test_the_current_month_is_kept_for_the_day(app, admin, report_worker):
    current = Month.of(today_utc())
    response = download(admin.client, REPORT, query_string={"month": str(current)})
    assert response.status_code == 200
    [kept] = kept_files(app, str(current))
    assert kept.name.endswith(f".{today_utc().isoformat()}.xlsx")


def test_the_store_removes_what_cannot_be_asked_for(tmp_path):
    store = ReportStore(tmp_path)
    today = dt.date(2026, 11, 24)

    def keep(key: ReportKey) -> Path:
        return store.write(key, lambda path: path.write_bytes(key.token.encode()))

    october = keep(ReportKey(7, 3, "2026-10"))
    november_yesterday = keep(ReportKey(7, 3, "2026-11", "2026-11-23"))
    november = keep(ReportKey(7, 3, "2026-11", "2026-11-24"))
    assert not november_yesterday.exists()
    assert october.exists() and november.exists()
    # Revisions are each month's own: a newer report of September leaves October's and
    # November's; a newer one of October replaces October's.
    september = keep(ReportKey(7, 4, "2026-09"))
    assert october.exists() and november.exists() and september.exists()
    newer = keep(ReportKey(7, 5, "2026-10"))
    assert not october.exists() and newer.exists()

    other = keep(ReportKey(8, 1, "2026-10"))
    (tmp_path / "8" / "notes.txt").write_text("not a report")
    (tmp_path / "stray.xlsx").write_bytes(b"x")
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "2026-10.r1.xlsx").write_bytes(b"an organisation that is gone")
    revisions = {7: {"2026-09": 4, "2026-10": 5, "2026-11": 3}, 8: {"2026-10": 1}}
    removed = store.sweep({7, 8}, lambda org, month: revisions[org][month], today)
    assert {p.relative_to(tmp_path).as_posix() for p in removed} == {
        "8/notes.txt",
        "stray.xlsx",
        "9/2026-10.r1.xlsx",
        "9",
    }
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [september, newer, november, other]
    )
    revisions[7]["2026-09"] = 6  # a sync touched September only
    assert store.sweep({7, 8}, lambda org, month: revisions[org][month], today) == [september]


def test_tenant_sheets_read_in_chunks_give_the_same_bytes(app, tmp_path):
    generated = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
    whole, chunked = tmp_path / "whole.xlsx", tmp_path / "chunked.xlsx"
    seen: list[tuple[int, int]] = []
    with app.app_context():
        organisation = make_organisation("chunks-msp")
        add_tenant(organisation, "Woodgrove", users=(("Xavier", ALWAYS),))
        add_tenant(organisation, "Alpine", users=(("Zoe", ALWAYS), ("Yan", ALWAYS)))
        add_tenant(organisation, "Empty", onboarded_on="2026-01-20")
        add_tenant(organisation, "contoso", users=(("Grace", (("2026-01-03", "2026-01-09"),)),))
        today = JANUARY.end
        usage = month_usage(organisation, JANUARY, today)
        write_report(usage, organisation, generated, whole, tenants=usage.tenants)
        totals = month_summary(organisation, JANUARY, today)
        write_report(
            totals,
            organisation,
            generated,
            chunked,
            tenants=tenant_usages(organisation, JANUARY, today, totals, chunk_users=1),
            progress=lambda written, total: seen.append((written, total)),
        )
    assert chunked.read_bytes() == whole.read_bytes()
    assert seen == [(n, 5) for n in range(1, 6)]


# --- A real queue ----------------------------------------------------------------------------


def test_one_build_however_many_members_ask(
    app, imported, queue_backend, report_queue, worker_factory
):
    clients = []
    for _ in range(8):
        client = app.test_client()
        page = client.get("/login")
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text)
        client.post(
            "/login",
            data={"email": "admin@jobs.example", "password": PASSWORD, "csrf_token": token[1]},
        )
        clients.append(client)
    answers: list[int] = []

    def ask(client) -> None:
        answers.append(client.get(f"{REPORT}?month=2026-01").status_code)

    threads = [threading.Thread(target=ask, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 8
    assert builds_pending(report_queue) == 1

    worker = worker_factory()
    bodies = {download(client, f"{REPORT}?month=2026-01").get_data() for client in clients}
    assert len(bodies) == 1
    wait_for(lambda: JANUARY_BUILT in worker.log)
    assert worker.log.count(JANUARY_BUILT) == 1
    assert builds_pending(report_queue) == 0


def test_an_abandoned_build_is_taken_over(app, admin, report_queue, report_worker):
    report_worker.stop()
    assert admin.client.get(f"{REPORT}?month=2026-01").status_code == 202
    with app.app_context():
        organisation_id = imported_id(app)
        revision = month_revision(organisation_id, JANUARY)
        key = ReportKey.of(organisation_id, revision, JANUARY, today_utc())
        record = record_of(report_queue, key)
        assert record["state"] == "queued"
        # The worker that took it was stopped: its claim is older than STALE_AFTER.
        report_queue.put(state_key(key), record | {"updated": time.time() - 3600})
    assert admin.client.get(f"{REPORT}?month=2026-01").status_code == 202
    assert builds_pending(report_queue) == 2
    with app.app_context():
        assert record_of(report_queue, key)["token"] != record["token"]
    worker = report_worker.start()
    assert download(admin.client, f"{REPORT}?month=2026-01").status_code == 200
    wait_for(lambda: "superseded" in worker.log and JANUARY_BUILT in worker.log)
    assert worker.log.count(JANUARY_BUILT) == 1


def imported_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Organisation.id).filter_by(slug=SLUG))


def test_closed_months_are_built_ahead_of_the_first_click(
    app, admin, queue_backend, report_queue, report_worker
):
    today = today_utc()
    closed = Month.of(today).previous()
    with app.app_context():
        organisation = db.session.get(Organisation, imported_id(app))
        stale = Path(app.config["REPORT_DIR"]) / str(organisation.id) / "2026-01.r0.xlsx"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"of an older revision")
        [key] = schedule_closed_months(today)
        assert key == ReportKey.of(
            organisation.id, month_revision(organisation.id, closed), closed, today
        )
        assert schedule_closed_months(today) == []  # already queued: not twice
    assert not stale.exists()
    store = jobs(app).store
    wait_for(lambda: store.has(key))
    response = admin.client.get(REPORT, query_string={"month": str(closed)})
    assert response.status_code == 200
    assert response.get_data() == store.path(key).read_bytes()
    with app.app_context():
        assert schedule_closed_months(today) == []  # kept: nothing to build

    periodic = [
        t for t in report_queue._registry._periodic_tasks if t.__name__ == "build_closed_months"
    ]
    assert len(periodic) == 1
    assert CLOSED_MONTHS_SCHEDULE(dt.datetime(2026, 12, 1, 0, 10))
    assert not CLOSED_MONTHS_SCHEDULE(dt.datetime(2026, 12, 1, 0, 11))


# --- The 202 protocol ------------------------------------------------------------------------


def claimed_progress(app, report_queue, written: int, total: int) -> None:
    """Record progress on the claimed build as the worker does."""
    with app.app_context():
        organisation_id = imported_id(app)
        revision = month_revision(organisation_id, JANUARY)
        key = ReportKey.of(organisation_id, revision, JANUARY, today_utc())
        record = record_of(report_queue, key)
        Progress(report_queue, key, record["token"])(written, total, force=True)


def test_while_building_the_page_refreshes_and_the_fragment_polls(app, admin, report_queue):
    first = admin.client.get(f"{REPORT}?month=2026-01")
    assert first.status_code == 202
    assert "Waiting for the report to start" in first.text
    claimed_progress(app, report_queue, 0, 0)
    reading = admin.client.get(f"{REPORT}?month=2026-01", headers=HTMX)
    assert "Reading the month's usage" in reading.text
    claimed_progress(app, report_queue, 3, 7)

    page = admin.client.get(f"{REPORT}?month=2026-01")
    assert page.status_code == 202
    assert page.mimetype == "text/html" and "Content-Disposition" not in page.headers
    assert "HX-Request" in page.headers["Vary"]
    html = page.text
    assert '<meta http-equiv="refresh" content="2">' in html
    assert "3 of 7 sheets written" in html
    assert '<progress id="report-progress" max="7" value="3">' in html
    assert "hx-get" not in html.split('id="report-download"')[1]
    assert 'href="/settings/usage?month=2026-01"' in html

    fragment = admin.client.get(f"{REPORT}?month=2026-01", headers=HTMX)
    assert fragment.status_code == 202
    assert fragment.text.startswith('<div class="actions report-download" id="report-download"')
    assert "<html" not in fragment.text and "http-equiv" not in fragment.text
    assert 'hx-trigger="load delay:1s"' in fragment.text
    assert 'hx-get="/settings/usage/report?month=2026-01"' in fragment.text
    # While the report is written the control is a status, not a button to press.
    assert '<span class="report-preparing" id="download-report"' in fragment.text
    assert "button primary" not in fragment.text.split('id="report-download"')[1]
    assert "3 of 7 sheets written" in fragment.text
    assert builds_pending(report_queue) == 1


def test_once_built_htmx_is_told_to_download_and_the_page_gets_the_file(app, admin, report_worker):
    assert download(admin.client, f"{REPORT}?month=2026-01").status_code == 200
    fragment = admin.client.get(f"{REPORT}?month=2026-01", headers=HTMX)
    assert fragment.status_code == 200
    assert "data-start-download" in fragment.text
    assert "Download report for January 2026 (.xlsx)" in fragment.text


def test_a_failed_build_says_so_and_can_be_retried(app, admin, queue_backend, report_worker):
    # The builds cannot make their temporary folders: every build fails until they can.
    report_worker.scratch.parent.mkdir(parents=True, exist_ok=True)
    report_worker.scratch.write_text("not a folder")
    failed = download(admin.client, f"{REPORT}?month=2026-01")
    assert failed.status_code == 500
    assert "could not be built. Something went wrong while writing it." in failed.text
    assert 'href="/settings/usage/report?month=2026-01&amp;retry=1"' in failed.text
    assert "http-equiv" not in failed.text and "Content-Disposition" not in failed.headers
    fragment = admin.client.get(f"{REPORT}?month=2026-01", headers=HTMX)
    assert fragment.status_code == 500 and 'role="alert"' in fragment.text
    assert 'hx-get="/settings/usage/report?month=2026-01&amp;retry=1"' in fragment.text
    assert admin.client.get(f"{REPORT}?month=2026-01").status_code == 500  # until retried
    assert "usage report failed" in report_worker.log
    assert kept_files(app) == []

    report_worker.scratch.unlink()
    retried = admin.client.get(f"{REPORT}?month=2026-01&retry=1")
    assert retried.status_code == 303
    assert retried.headers["Location"] == "/settings/usage/report?month=2026-01"
    response = download(admin.client, f"{REPORT}?month=2026-01")
    assert response.status_code == 200 and total_cost(response.get_data()) == Decimal("6.00")


def test_a_request_waits_only_a_few_seconds(app, admin, report_queue):
    app.config["REPORT_WAIT"] = 0.5
    started = time.monotonic()
    response = admin.client.get(f"{REPORT}?month=2026-01")
    assert response.status_code == 202
    assert 0.5 <= time.monotonic() - started < 5


def test_the_queue_is_redis_when_queue_url_says_so(app, queue_backend, report_queue):
    storage = type(jobs(app).queue.storage).__name__
    assert storage == {"sqlite": "SqliteStorage", "redis": "RedisStorage"}[queue_backend]
    assert report_queue.name == app.config["QUEUE_NAME"]


def test_queue_url_settings(tmp_path):
    assert config._queue("", tmp_path) == {
        "QUEUE_URL": f"sqlite:///{tmp_path / 'report-queue.sqlite3'}",
        "QUEUE_NAME": "petra-reports",
    }
    assert config._queue("redis://queue.internal:6379/2", tmp_path)["QUEUE_URL"] == (
        "redis://queue.internal:6379/2"
    )
    assert config._queue("sqlite:////srv/q.sqlite3", tmp_path)["QUEUE_URL"] == (
        "sqlite:////srv/q.sqlite3"
    )
    with pytest.raises(config.ConfigError, match="QUEUE_URL must be a Redis URL"):
        config._queue("amqp://broker.internal", tmp_path)


# --- Kept reports belong to their month's data -----------------------------------------------


def sync(app, tmp_path, identity: str, tenant_id: str, billable_from: str) -> None:
    """A sync through `flask usage import`: a file of one tenant with one more user."""
    file = organisation_file()
    file["members"] = []
    [row] = [t for t in file["tenants"] if t["id"] == tenant_id]
    row["identities"] = [
        {
            "id": identity,
            "display_name": f"Synced {identity}",
            "user_principal_name": f"{identity}@contoso.example",
            "billable_periods": [{"from": billable_from, "until": None}],
        }
    ]
    file["tenants"] = [row]
    path = tmp_path / f"{identity}.json"
    path.write_text(json.dumps(file))
    result = app.test_cli_runner().invoke(args=["usage", "import", str(path)])
    assert result.exit_code == 0, result.output


def test_a_sync_that_did_not_touch_a_closed_month_keeps_its_report(
    app, admin, report_worker, report_queue, tmp_path
):
    first = download(admin.client, f"{REPORT}?month=2026-01")
    assert first.status_code == 200
    body = first.get_data()
    sync(app, tmp_path, "u-today", "t-2", today_utc().isoformat())
    again = admin.client.get(f"{REPORT}?month=2026-01")
    assert again.status_code == 200  # a file send: nothing to build
    assert again.get_data() == body
    assert report_worker.log.count(JANUARY_BUILT) == 1


def test_reports_a_sync_made_stale_are_rebuilt_in_the_background_once(
    app, admin, worker_factory, report_queue, tmp_path
):
    worker = worker_factory()
    assert download(admin.client, f"{REPORT}?month=2026-01").status_code == 200
    worker.stop()
    # Two syncs into January land while no worker runs.
    sync(app, tmp_path, "u-jan-1", "t-1", "2026-01-10")
    sync(app, tmp_path, "u-jan-2", "t-2", "2026-01-25")
    with app.app_context():
        organisation_id = imported_id(app)
        revision = month_revision(organisation_id, JANUARY)
        key = ReportKey.of(organisation_id, revision, JANUARY, today_utc())
        assert record_of(report_queue, key)["state"] == "queued"
    rebuilt = worker_factory()
    wait_for(lambda: jobs(app).store.has(key) and JANUARY_BUILT in rebuilt.log)
    wait_for(lambda: record_of(report_queue, key) is None)
    # The build of the first sync's revision stopped at once: January was built once.
    assert rebuilt.log.count(JANUARY_BUILT) == 1
    response = admin.client.get(f"{REPORT}?month=2026-01")
    assert response.status_code == 200  # the next click is a file send
    assert total_cost(response.get_data()) == Decimal("6.00") + Decimal("2.13") + Decimal("0.68")


def test_stale_reports_are_queued_closed_months_first(app, imported, report_queue):
    from billing_app.reports.worker import rebuild_stale

    today = today_utc()
    current = Month.of(today)
    with app.app_context():
        store = jobs(app).store
        for month in (JANUARY, Month(2026, 3), current):
            key = ReportKey.of(imported.id, 0, month, today)
            store.write(key, lambda path: path.write_bytes(b"an older revision"))
        queued = rebuild_stale(imported.id, dt.date(2026, 2, 14), today)
        assert [key.month for key in queued] == ["2026-03", str(current)]
        assert [key.day for key in queued] == [None, today.isoformat()]
        # However many syncs land, a month is queued once for its revision.
        assert rebuild_stale(imported.id, dt.date(2026, 2, 14), today) == []
