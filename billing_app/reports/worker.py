"""The worker side of a report: building one (`build_report`, with its progress recorded in
the queue's store) and, on schedule, the reports of the month that closed last."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flask import Flask
from huey import crontab
from huey.api import Huey, TaskWrapper
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.cache import month_summary
from billing_app.figures.calculator import MonthTotals, TenantUsage, month_usage
from billing_app.figures.months import FIRST_MONTH, Month, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.figures.revisions import month_revision
from billing_app.models import Organisation, Price
from billing_app.reports.queue import (
    BUILD_REPORT,
    BUILDING,
    CHUNK_USERS,
    FAILED,
    HEARTBEAT,
    Jobs,
    abandoned,
    claim,
    jobs,
    lease,
    record_of,
    state_key,
)
from billing_app.reports.store import ReportKey
from billing_app.reports.writer import write_report

log = logging.getLogger("billing_app.reports")

CLOSED_MONTHS_SCHEDULE = crontab(minute="*/10")


def register(queue: Huey, app: Flask) -> dict[str, TaskWrapper]:
    """Add the reports' tasks to the worker's queue: building one report, and the schedule
    of the closed months' reports."""

    @queue.task(name=BUILD_REPORT)
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

    return {BUILD_REPORT: build, "build_closed_months": closed_months}


def has_price(organisation: Organisation, month: Month) -> bool:
    """Whether the organisation's price list has a price for `month` (one small query)."""
    found = db.session.scalar(
        select(Price.id)
        .where(Price.organisation_id == organisation.id, Price.from_month < month.end)
        .limit(1)
    )
    return found is not None


class Progress:
    """A build's progress, recorded in its claim as long as the claim is still this build's:
    every `HEARTBEAT` seconds by a thread of its own while the build runs (`beating`), so
    that the record is the build's heartbeat whatever the build is doing, and at once when
    called with `force`. Each beat also keeps the build's temporary folder fresh."""

    def __init__(
        self, queue: Huey, key: ReportKey, token: str, scratch: Path | None = None
    ) -> None:
        self.queue, self.key, self.token, self.scratch = queue, key, token, scratch
        self.written = self.total = 0
        self._lock = threading.Lock()

    def __call__(self, written: int, total: int, *, force: bool = False) -> None:
        self.written, self.total = written, total
        if force:
            self.beat()

    def beat(self) -> None:
        with self._lock:
            self.put(state=BUILDING, written=self.written, total=self.total)
            if self.scratch is not None:
                with contextlib.suppress(OSError):  # not made yet, or cannot be
                    os.utime(self.scratch)

    @contextlib.contextmanager
    def beating(self) -> Iterator[None]:
        """Beat every `HEARTBEAT` seconds until the block ends."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(HEARTBEAT):
                try:
                    self.beat()
                except Exception:  # the queue's store is down: the next beat tries again
                    log.warning("usage report heartbeat failed: %s", self.key.token)

        self.beat()
        thread = threading.Thread(target=run, name=f"heartbeat-{self.token}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def mine(self) -> bool:
        record = record_of(self.queue, self.key)
        return record is not None and record.get("token") == self.token

    def put(self, **fields: Any) -> None:
        if self.mine():
            record = {"token": self.token, "updated": time.time(), **fields}
            self.queue.put(state_key(self.key), record)

    def clear(self) -> None:
        if self.mine():
            self.queue.delete(state_key(self.key))


def build_report(key: ReportKey, token: str) -> None:
    """Build and keep the report of `key`, recording progress in its claim `token`; a build
    whose claim was taken over, whose file exists or whose data changed since it was asked
    for stops. Its temporary files live in a folder of their own under `REPORT_DIR`, removed
    when it ends; a build that takes over another removes what that one left."""
    app_jobs = jobs()
    record = record_of(app_jobs.queue, key)
    if record is None or record.get("token") != token:
        log.info("usage report build superseded: %s", key.token)
        return
    if replaced := record.get("replaces"):
        shutil.rmtree(app_jobs.store.scratch(replaced), ignore_errors=True)
    scratch = app_jobs.store.scratch(token)
    progress = Progress(app_jobs.queue, key, token, scratch)
    organisation = db.session.get(Organisation, key.organisation_id)
    if (
        app_jobs.store.has(key)
        or organisation is None
        or month_revision(organisation.id, Month.parse(key.month)) != key.revision
    ):
        progress.clear()
        return
    try:
        with progress.beating():
            failure = _build(app_jobs, key, organisation, progress, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if failure is None:
        progress.clear()
    else:
        progress.put(state=FAILED, message=failure)


def _build(
    app_jobs: Jobs, key: ReportKey, organisation: Organisation, progress: Progress, scratch: Path
) -> str | None:
    """Write the report; None once kept, else why it failed."""
    started = time.monotonic()
    month = Month.parse(key.month)
    today = key.today
    try:
        scratch.mkdir(parents=True)
        totals = month_summary(organisation, month, today)
        app_jobs.store.write(
            key,
            lambda path: write_report(
                totals,
                organisation,
                dt.datetime.now(dt.UTC),
                path,
                tmpdir=str(scratch),
                tenants=tenant_usages(organisation, month, today, totals),
                progress=progress,
            ),
            scratch,
        )
    except NoPriceError:
        log.warning("usage report failed: %s has no price", key.token)
        return f"There is no unit price for {month.label}."
    except Exception:
        log.exception("usage report failed: %s", key.token)
        return "Something went wrong while writing it."
    db.session.rollback()
    if month_revision(key.organisation_id, month) != key.revision:
        # The data changed while the report was written: no one will ask for this one.
        app_jobs.store.discard(key)
    log.info(
        "usage report built: organisation_id=%s month=%s sheets=%s seconds=%.1f",
        key.organisation_id,
        key.month,
        1 + len(totals.tenants),
        time.monotonic() - started,
        extra={"organisation_id": key.organisation_id, "month": key.month},
    )
    return None


def sweep_scratch() -> list[Path]:
    """Remove the temporary files of builds whose worker died (untouched for a lease)."""
    removed = jobs().store.sweep_scratch(lease())
    if removed:
        log.info("temporary files of %d dead builds removed", len(removed))
    return removed


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


def rebuild_stale(organisation_id: int, changed_from: dt.date, today: dt.date) -> list[ReportKey]:
    """After a sync that changed figures from `changed_from` on: queue the rebuild of each
    report kept for a month it touched (closed months first, newest first; then the month to
    date), so that the next download is a file send. A month is queued once under its new
    revision however many syncs land: a build of an older revision stops at once."""
    app_jobs = jobs()
    touched = sorted(
        {
            Month.parse(kept.month)
            for kept in app_jobs.store.kept(organisation_id)
            if Month.parse(kept.month).end > changed_from
        },
        key=lambda month: (month.end > today, -month.end.toordinal()),
    )
    queued = []
    for month in touched:
        key = ReportKey.of(organisation_id, month_revision(organisation_id, month), month, today)
        if app_jobs.store.has(key):
            continue
        record = record_of(app_jobs.queue, key)
        if (record is None or abandoned(record)) and claim(app_jobs, key, replacing=record):
            queued.append(key)
    if queued:
        log.info("stale reports queued: organisation_id=%s months=%d", organisation_id, len(queued))
    return queued


def schedule_closed_months(today: dt.date) -> list[ReportKey]:
    """Queue the report of the month that closed last for every organisation that has none
    kept yet, and remove the kept reports no request can be answered with any more and the
    temporary files of builds whose worker died."""
    app_jobs = jobs()
    month = Month.of(today).previous()
    organisations = db.session.scalars(select(Organisation)).all()
    queued = []
    if month >= FIRST_MONTH:
        for organisation in organisations:
            revision = month_revision(organisation.id, month)
            key = ReportKey.of(organisation.id, revision, month, today)
            if app_jobs.store.has(key) or not has_price(organisation, month):
                continue
            record = record_of(app_jobs.queue, key)
            claimable = record is None or abandoned(record)
            if claimable and claim(app_jobs, key, replacing=record):
                queued.append(key)
    removed = app_jobs.store.sweep(
        {organisation.id for organisation in organisations},
        lambda organisation_id, kept: month_revision(organisation_id, Month.parse(kept)),
        today,
    )
    removed += sweep_scratch()
    if queued or removed:
        log.info(
            "closed months: %d reports queued, %d old files removed", len(queued), len(removed)
        )
    return queued
