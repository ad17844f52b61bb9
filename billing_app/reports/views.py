"""The itemized report of a month: the .xlsx download once built, its progress while the
report worker builds it (`requests`, `queue`, `worker`). A blueprint of its own, at the
Usage page's address (/settings/usage/report)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from billing_app.access import is_htmx, requires
from billing_app.errors import render_error
from billing_app.figures.month_request import MonthRefusal, month_request
from billing_app.figures.months import Month, today_utc
from billing_app.logs import billing_log as log
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.reports.queue import ReportStatus
from billing_app.reports.requests import request_report
from billing_app.reports.writer import report_filename

bp = Blueprint("reports", __name__, url_prefix="/settings/usage")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/report")
@requires(Action.DOWNLOAD_REPORT)
def report():
    """The month's itemized report as an .xlsx attachment once built; 202 with its progress
    while it is being built (htmx: the Download control, else a page that refreshes)."""
    organisation = current_user.organisation
    today = today_utc()
    asked = month_request(organisation, request.args.get("month"), today, what="report")
    if isinstance(asked, MonthRefusal):
        return render_error(asked.status, asked.message, title=asked.title)
    month = asked.month
    retry = request.args.get("retry") == "1"
    status = request_report(organisation, month, today, retry=retry)
    htmx = is_htmx()
    if retry and not htmx:
        # The progress page refreshes itself: from the address that does not ask to retry.
        return redirect(url_for("reports.report", month=str(month)), 303)
    if status.ready and not htmx:
        return report_file(status, organisation, month)
    return report_progress(status, month, htmx)


def report_file(status: ReportStatus, organisation: Organisation, month: Month):
    """The kept report, sent as an attachment."""
    response = send_file(
        status.file,
        mimetype=XLSX,
        as_attachment=True,
        download_name=report_filename(organisation, month),
        etag=False,
    )
    response.cache_control.no_store = True
    log_download(organisation, month)
    return response


def report_progress(status: ReportStatus, month: Month, htmx: bool):
    """Where the report stands: for htmx the Download control (which, once the report is
    ready, starts the download), else the page that refreshes until it arrives."""
    if status.file is not None:
        status.file.close()
    code = {"ready": 200, "failed": 500}.get(status.state, 202)
    context = {"status": status, "report_month": month}
    template = "_report_download.html" if htmx else "report_progress.html"
    return render_template(template, **context), code


def log_download(organisation: Organisation, month: Month) -> None:
    fields = {"member_id": current_user.id, "organisation": organisation.slug, "month": str(month)}
    log.info(
        "usage report downloaded: member=%s organisation=%s month=%s",
        *fields.values(),
        extra=fields,
    )
