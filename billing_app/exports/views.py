"""The CSV exports of a month: tenants.csv and users.csv, streamed as attachments."""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, request, stream_with_context
from flask_login import current_user

from billing_app.access import requires
from billing_app.errors import render_error
from billing_app.exports import csv
from billing_app.figures.month_request import MonthRefusal, month_request
from billing_app.figures.months import Month, today_utc
from billing_app.logs import billing_log as log
from billing_app.models import Organisation
from billing_app.permissions import Action
from billing_app.tenants import service as tenants

bp = Blueprint("exports", __name__, url_prefix="/settings/usage/export")

#: The page's download links ask with a fresh token and show "Preparing…" until a cookie of
#: that name arrives with the answer, which a browser reads before the file's first byte.
DOWNLOAD_TOKEN = re.compile(r"[0-9a-f]{32}")
DOWNLOAD_COOKIE_SECONDS = 300


@bp.after_request
def tell_the_page_the_download_began(response: Response) -> Response:
    """Answer a download that carries a `download_token` with that token's cookie."""
    token = request.args.get("download_token", "")
    if DOWNLOAD_TOKEN.fullmatch(token):
        response.set_cookie(
            f"petra_download_{token}",
            str(response.status_code),
            max_age=DOWNLOAD_COOKIE_SECONDS,
            path="/",
            secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
            httponly=False,
            samesite="Lax",
        )
    return response


@bp.get("/tenants.csv")
@requires(Action.DOWNLOAD_REPORT)
def tenants_csv():
    """One row per tenant of the month asked for, as a CSV attachment."""
    organisation, today = current_user.organisation, today_utc()
    asked = month_request(organisation, request.args.get("month"), today, what="export")
    if isinstance(asked, MonthRefusal):
        return render_error(asked.status, asked.message, title=asked.title)
    rows = csv.month_tenant_rows(organisation, asked, today)
    return attachment(csv.chunks(csv.TENANT_COLUMNS, rows), organisation, asked.month, "tenants")


@bp.get("/users.csv")
@requires(Action.DOWNLOAD_REPORT)
def users_csv():
    """One row per billable user of the month asked for (`tenant=`: of one tenant), as CSV."""
    organisation, today = current_user.organisation, today_utc()
    tenant_id = None
    if "tenant" in request.args:
        tenant = tenants.find(organisation.id, request.args["tenant"])
        if tenant is None:
            abort(404)
        tenant_id = tenant.id
    asked = month_request(organisation, request.args.get("month"), today, what="export")
    if isinstance(asked, MonthRefusal):
        return render_error(asked.status, asked.message, title=asked.title)
    month = asked.month
    rows = csv.user_rows(organisation, month, today, tenant_id)
    return attachment(csv.chunks(csv.USER_COLUMNS, rows), organisation, month, "users")


def attachment(body: Iterator[str], organisation: Organisation, month: Month, kind: str):
    """The CSV streamed as a download, written while it is sent."""
    name = csv.filename(organisation, month, kind)
    response = Response(
        stream_with_context(piece.encode("utf-8") for piece in body),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    response.cache_control.no_store = True
    fields = {"member_id": current_user.id, "organisation": organisation.slug, "month": str(month)}
    log.info(
        "usage export %s.csv downloaded: member=%s organisation=%s month=%s",
        kind,
        *fields.values(),
        extra=fields | {"export": kind},
    )
    return response
