"""The worker side of a report: building one (`build_report`, with its progress recorded in
the queue's store) and, on schedule, the reports of the month that closed last."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from flask import current_app
from huey.api import Huey
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.cache import month_summary
from billing_app.figures.calculator import MonthTotals, TenantUsage, month_usage
from billing_app.figures.months import FIRST_MONTH, Month
from billing_app.figures.proration import NoPriceError
from billing_app.models import Organisation, Price
from billing_app.reports.queue import (
    BUILDING,
    CHUNK_USERS,
    FAILED,
    HEARTBEAT,
    abandoned,
    claim,
    jobs,
    record_of,
    state_key,
)
from billing_app.reports.store import ReportKey
from billing_app.reports.writer import write_report

log = logging.getLogger("billing_app.reports")


def has_price(organisation: Organisation, month: Month) -> bool:
    """Whether the organisation's price list has a price for `month` (one small query)."""
    found = db.session.scalar(
        select(Price.id)
        .where(Price.organisation_id == organisation.id, Price.from_month < month.end)
        .limit(1)
    )
    return found is not None


class Progress:
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
    for stops."""
    app_jobs = jobs()
    progress = Progress(app_jobs.queue, key, token)
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
            record = record_of(app_jobs.queue, key)
            claimable = record is None or abandoned(record)
            if claimable and claim(app_jobs, key, replacing=record):
                queued.append(key)
    removed = app_jobs.store.sweep({o.id: o.usage_revision for o in organisations}, today)
    if queued or removed:
        log.info(
            "closed months: %d reports queued, %d old files removed", len(queued), len(removed)
        )
    return queued
