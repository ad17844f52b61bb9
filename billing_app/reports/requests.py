"""The web side of a report: the kept file, or its build claimed and queued (once, whoever
asks) and waited for a few seconds, then the progress the worker records (see `queue`)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from flask import current_app

from billing_app.figures.months import Month
from billing_app.figures.revisions import month_revision
from billing_app.models import Organisation
from billing_app.reports.queue import (
    FAILED,
    POLL,
    QUEUED,
    READY,
    ReportStatus,
    abandoned,
    claim,
    jobs,
    record_of,
    status_of,
)
from billing_app.reports.store import ReportKey

log = logging.getLogger("billing_app.reports")


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
    (`REPORT_WAIT`). A failed build stays failed until asked with `retry`; a build whose
    worker died is taken over (see `queue.abandoned`)."""
    app_jobs = jobs()
    key = ReportKey.of(organisation.id, month_revision(organisation.id, month), month, today)
    file = app_jobs.store.open(key)
    if file is not None:
        return ReportStatus(key, READY, file=file)
    record = record_of(app_jobs.queue, key)
    if record is not None and record["state"] == FAILED and not retry:
        return status_of(key, record)
    if record is None or record["state"] == FAILED or abandoned(record, retry=retry):
        claim(app_jobs, key, replacing=record)
    wait = current_app.config["REPORT_WAIT"] if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        file = app_jobs.store.open(key)
        if file is not None:
            return ReportStatus(key, READY, file=file)
        record = record_of(app_jobs.queue, key)
        if record is not None and record["state"] == FAILED:
            return status_of(key, record)
        if time.monotonic() >= deadline:
            return status_of(key, record or {"state": QUEUED})
        time.sleep(POLL)
