"""The itemized report of a month, as an .xlsx download."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import BinaryIO

from flask import current_app, request, send_file
from flask_login import current_user

from billing_app.access import requires
from billing_app.errors import render_error
from billing_app.figures.calculator import MonthUsage, month_usage
from billing_app.figures.months import Month, MonthNotAvailable, parse_requested_month, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.logs import billing_log as log
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.reports.writer import report_filename, write_report
from billing_app.usage.service import no_price

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@requires(Action.DOWNLOAD_REPORT)
def report():
    """The itemized report of the month asked for, as an .xlsx attachment."""
    organisation = current_user.organisation
    today = today_utc()
    try:
        month = parse_requested_month(request.args.get("month"), today)
        usage = month_usage(organisation, month, today)
    except MonthNotAvailable as bad:
        return render_error(400, str(bad), title="No report for that month")
    except NoPriceError:
        return render_error(409, no_price(month), title="No price for that month")
    response = send_file(
        written_report(usage, organisation),
        mimetype=XLSX,
        as_attachment=True,
        download_name=report_filename(organisation, month),
        etag=False,
    )
    response.cache_control.no_store = True
    log_download(organisation, month)
    return response


def written_report(usage: MonthUsage, organisation: Organisation) -> BinaryIO:
    """The report written to a temporary file in `REPORT_TMPDIR` and opened for reading. The
    file is unlinked at once: it goes away when the response closes it."""
    tmpdir = current_app.config.get("REPORT_TMPDIR") or tempfile.gettempdir()
    descriptor, path = tempfile.mkstemp(prefix="usage-", suffix=".xlsx", dir=tmpdir)
    os.close(descriptor)
    try:
        write_report(usage, organisation, dt.datetime.now(dt.UTC), path, tmpdir=tmpdir)
        return open(path, "rb")
    finally:
        os.unlink(path)


def log_download(organisation: Organisation, month: Month) -> None:
    fields = {"member_id": current_user.id, "organisation": organisation.slug, "month": str(month)}
    log.info(
        "usage report downloaded: member=%s organisation=%s month=%s",
        *fields.values(),
        extra=fields,
    )
