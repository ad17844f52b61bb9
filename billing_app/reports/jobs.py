"""Building reports on a job queue, in a worker process separate from the web servers.

The queue is Huey's: a file of its SQLite storage by default (`QUEUE_URL` unset; `make run`
needs no server), Redis when `QUEUE_URL` is a Redis URL (production: every app server and
worker share it). The worker is `flask --app wsgi reports worker`.

A request for a report (`request_report`) answers at once with the kept file when there is
one (see `store`). Otherwise it claims the build of that report in the queue's store
(`put_if_empty`, atomic on both storages: however many members ask, one build per month and
data is queued) and enqueues it, then waits a few seconds (`REPORT_WAIT`) for it, so that
small reports still arrive on the first click; after that it answers with the progress the
worker records (sheets written out of total), and the member's browser asks again.

The claim records the build's state: queued, building (with progress), or failed (with the
reason, shown until the member retries). A build that is done leaves the file and no record.
A claim that has not moved for `STALE_AFTER` seconds (its worker was stopped) is taken over
by the next request; the build it enqueued then finds the claim is not its own and stops.

A periodic task builds the reports of the month that closed last for every organisation,
ahead of the first click, and removes kept files no request can be answered with any more.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey, TaskWrapper
from sqlalchemy import select

from billing_app.config import QUEUE_SCHEMES
from billing_app.extensions import db
from billing_app.figures.cache import month_summary
from billing_app.figures.calculator import MonthTotals, TenantUsage, month_usage
from billing_app.figures.months import FIRST_MONTH, Month, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation, Price
from billing_app.reports.store import ReportKey, ReportStore
from billing_app.reports.writer import write_report

log = logging.getLogger("billing_app.reports")

STALE_AFTER = 10 * 60
"""Seconds after which a claim whose state has not changed is taken for an abandoned one."""
POLL = 0.1
HEARTBEAT = 0.5
"""Seconds between the progress records of a build (a sheet takes milliseconds)."""
CHUNK_USERS = 50_000
"""Users read from the database at a time while the tenant sheets are written."""
CLOSED_MONTHS_SCHEDULE = crontab(minute="*/10")

QUEUED, BUILDING, FAILED, READY = "queued", "building", "failed", "ready"


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """Where a month's report stands: ready (with the kept file opened for reading), queued,
    building (sheets written out of total) or failed (with the reason)."""

    key: ReportKey
    state: str
    written: int = 0
    total: int = 0
    message: str | None = None
    file: BinaryIO | None = None

    @property
    def ready(self) -> bool:
        return self.state == READY


@dataclass(frozen=True, slots=True)
class Jobs:
    """An app's report queue, its tasks and its kept reports."""

    queue: Huey
    build: TaskWrapper
    closed_months: TaskWrapper
    store: ReportStore


def jobs(app: Flask | None = None) -> Jobs:
    """The app's report queue and store, set up from its config on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("reports")
    if found is None:
        found = app.extensions.setdefault("reports", _create(app))
    return found


def _create(app: Flask) -> Jobs:
    url, name = app.config["QUEUE_URL"], app.config["QUEUE_NAME"]
    if url.startswith(QUEUE_SCHEMES):
        queue: Huey = RedisHuey(name, url=url, results=False)
    else:
        queue = SqliteHuey(name, filename=url.removeprefix("sqlite:///"), results=False)

    @queue.task(name="build_report")
    def build(organisation_id: int, revision: int, month: str, day: str | None, token: str):
        """Build one report (on the worker)."""
        with app.app_context():
            try:
                build_report(ReportKey(organisation_id, revision, month, day), token)
            finally:
                db.session.remove()

    @queue.periodic_task(CLOSED_MONTHS_SCHEDULE, name="build_closed_months")
    def closed_months():
        """Build the reports of the month that closed last, and sweep the kept reports."""
        with app.app_context():
            try:
                schedule_closed_months(today_utc())
            finally:
                db.session.remove()

    from billing_app.notifications.tasks import register as register_notification_tasks

    register_notification_tasks(queue, app)
    return Jobs(queue, build, closed_months, ReportStore(app.config["REPORT_DIR"]))


# --- The web side ----------------------------------------------------------------------------


def has_price(organisation: Organisation, month: Month) -> bool:
    """Whether the organisation's price list has a price for `month` (one small query)."""
    found = db.session.scalar(
        select(Price.id)
        .where(Price.organisation_id == organisation.id, Price.from_month < month.end)
        .limit(1)
    )
    return found is not None


def request_report(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    *,
    retry: bool = False,
    wait: float | None = None,
) -> ReportStatus:
    """The organisation's report of `month` as counted on `today`: the kept file, or else
    its build claimed and queued (once, whoever asks) and waited for up to `wait` seconds
    (`REPORT_WAIT`). A failed build stays failed until asked with `retry`."""
    app_jobs = jobs()
    key = ReportKey.of(organisation.id, organisation.usage_revision, month, today)
    file = app_jobs.store.open(key)
    if file is not None:
        return ReportStatus(key, READY, file=file)
    record = _record(app_jobs.queue, key)
    if record is not None and record["state"] == FAILED and not retry:
        return _status(key, record)
    if record is None or record["state"] == FAILED or _abandoned(record):
        _claim(app_jobs, key, replacing=record)
    wait = current_app.config["REPORT_WAIT"] if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        file = app_jobs.store.open(key)
        if file is not None:
            return ReportStatus(key, READY, file=file)
        record = _record(app_jobs.queue, key)
        if record is not None and record["state"] == FAILED:
            return _status(key, record)
        if time.monotonic() >= deadline:
            return _status(key, record or {"state": QUEUED})
        time.sleep(POLL)


def _state_key(key: ReportKey) -> str:
    return f"report-build:{key.token}"


def _record(queue: Huey, key: ReportKey) -> dict[str, Any] | None:
    return queue.get(_state_key(key), peek=True)


def _status(key: ReportKey, record: dict[str, Any]) -> ReportStatus:
    return ReportStatus(
        key,
        record["state"],
        written=record.get("written", 0),
        total=record.get("total", 0),
        message=record.get("message"),
    )


def _abandoned(record: dict[str, Any]) -> bool:
    return time.time() - record.get("updated", 0) > STALE_AFTER


def _claim(app_jobs: Jobs, key: ReportKey, replacing: dict[str, Any] | None = None) -> bool:
    """Claim the build of `key` and queue it, unless someone else claimed it first."""
    token = secrets.token_hex(8)
    record = {"state": QUEUED, "token": token, "written": 0, "total": 0, "updated": time.time()}
    if replacing is not None:
        app_jobs.queue.delete(_state_key(key))
    if not app_jobs.queue.put_if_empty(_state_key(key), record):
        return False
    app_jobs.build(key.organisation_id, key.revision, key.month, key.day, token)
    log.info("usage report queued: organisation_id=%s month=%s", key.organisation_id, key.month)
    return True


# --- The worker side -------------------------------------------------------------------------


class _Progress:
    """Records a build's progress in its claim, at most every `HEARTBEAT` seconds, as long as
    the claim is still this build's."""

    def __init__(self, queue: Huey, key: ReportKey, token: str) -> None:
        self.queue, self.key, self.token = queue, key, token
        self.last = 0.0

    def __call__(self, written: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < HEARTBEAT and written < total:
            return
        self.last = now
        self.put(state=BUILDING, written=written, total=total)

    def mine(self) -> bool:
        record = _record(self.queue, self.key)
        return record is not None and record.get("token") == self.token

    def put(self, **fields: Any) -> None:
        if self.mine():
            record = {"token": self.token, "updated": time.time(), **fields}
            self.queue.put(_state_key(self.key), record)

    def clear(self) -> None:
        if self.mine():
            self.queue.delete(_state_key(self.key))


def build_report(key: ReportKey, token: str) -> None:
    """Build and keep the report of `key`, recording progress in its claim `token`; a build
    whose claim was taken over, whose file exists or whose data changed since it was asked
    for stops."""
    app_jobs = jobs()
    progress = _Progress(app_jobs.queue, key, token)
    if not progress.mine():
        log.info("usage report build superseded: %s", key.token)
        return
    organisation = db.session.get(Organisation, key.organisation_id)
    if (
        app_jobs.store.has(key)
        or organisation is None
        or organisation.usage_revision != key.revision
    ):
        progress.clear()
        return
    started = time.monotonic()
    progress(0, 0, force=True)
    month = Month.parse(key.month)
    today = key.today
    try:
        totals = month_summary(organisation, month, today)
        app_jobs.store.write(
            key,
            lambda path: write_report(
                totals,
                organisation,
                dt.datetime.now(dt.UTC),
                path,
                tmpdir=current_app.config.get("REPORT_TMPDIR"),
                tenants=tenant_usages(organisation, month, today, totals),
                progress=progress,
            ),
        )
    except NoPriceError:
        progress.put(state=FAILED, message=f"There is no unit price for {month.label}.")
        log.warning("usage report failed: %s has no price", key.token)
        return
    except Exception:
        log.exception("usage report failed: %s", key.token)
        progress.put(state=FAILED, message="Something went wrong while writing it.")
        return
    db.session.rollback()
    if db.session.get(Organisation, key.organisation_id).usage_revision != key.revision:
        # The data changed while the report was written: no one will ask for this one.
        app_jobs.store.discard(key)
    progress.clear()
    log.info(
        "usage report built: organisation_id=%s month=%s sheets=%s seconds=%.1f",
        key.organisation_id,
        key.month,
        1 + len(totals.tenants),
        time.monotonic() - started,
        extra={"organisation_id": key.organisation_id, "month": key.month},
    )


def tenant_usages(
    organisation: Organisation,
    month: Month,
    today: dt.date,
    totals: MonthTotals,
    chunk_users: int = CHUNK_USERS,
) -> Iterator[TenantUsage]:
    """The tenants of `totals` with their users, in the same order, read about
    `chunk_users` users at a time."""
    batch: list[int] = []
    users = 0
    for tenant in totals.tenants:
        batch.append(tenant.tenant_id)
        users += tenant.billable_users
        if users >= chunk_users:
            yield from _tenants_of(organisation, month, today, batch)
            batch, users = [], 0
    if batch:
        yield from _tenants_of(organisation, month, today, batch)


def _tenants_of(
    organisation: Organisation, month: Month, today: dt.date, tenant_ids: Sequence[int]
) -> Iterator[TenantUsage]:
    tenants = month_usage(organisation, month, today, tenant_ids).tenants
    if [tenant.tenant_id for tenant in tenants] != list(tenant_ids):
        raise RuntimeError("the organisation's tenants changed while the report was written")
    yield from tenants


def schedule_closed_months(today: dt.date) -> list[ReportKey]:
    """Queue the report of the month that closed last for every organisation that has none
    kept yet, and remove the kept reports no request can be answered with any more."""
    app_jobs = jobs()
    month = Month.of(today).previous()
    organisations = db.session.scalars(select(Organisation)).all()
    queued = []
    if month >= FIRST_MONTH:
        for organisation in organisations:
            key = ReportKey.of(organisation.id, organisation.usage_revision, month, today)
            if app_jobs.store.has(key) or not has_price(organisation, month):
                continue
            record = _record(app_jobs.queue, key)
            claimable = record is None or _abandoned(record)
            if claimable and _claim(app_jobs, key, replacing=record):
                queued.append(key)
    removed = app_jobs.store.sweep({o.id: o.usage_revision for o in organisations}, today)
    if queued or removed:
        log.info(
            "closed months: %d reports queued, %d old files removed", len(queued), len(removed)
        )
    return queued


# --- Commands --------------------------------------------------------------------------------

reports_cli = AppGroup("reports", help="Usage reports.")


@reports_cli.command("worker")
@click.option("--workers", default=1, show_default=True, help="Builds run side by side.")
def worker_command(workers: int) -> None:
    """Run the worker that builds usage reports, and the scheduled builds of closed months,
    until interrupted (Ctrl-C lets running builds finish; SIGTERM stops at once)."""
    huey_log = logging.getLogger("huey")
    if not huey_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        huey_log.addHandler(handler)
        huey_log.setLevel(logging.INFO)
    queue = jobs().queue
    click.echo(f"report worker: queue {queue.name!r} on {_where(current_app.config['QUEUE_URL'])}")
    queue.create_consumer(workers=workers, worker_type="thread", periodic=True).run()


def _where(url: str) -> str:
    """The queue's address without a password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def init_app(app: Flask) -> None:
    app.cli.add_command(reports_cli)
