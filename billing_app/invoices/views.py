"""The invoices section of the Usage page, and the way to an invoice's current Stripe page."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request
from flask_login import current_user

from billing_app.access import is_htmx, requires
from billing_app.figures.months import today_utc
from billing_app.invoices import service
from billing_app.permissions import Action
from billing_app.stripe_gateway import gateway
from billing_app.web.responses import NO_STORE

bp = Blueprint("invoices", __name__, url_prefix="/settings/usage/invoices")


@bp.get("")
@requires(Action.SEE_INVOICES)
def section():
    """The latest invoices, read from Stripe now: a fragment for htmx, else a page of its own."""
    shown = service.latest_invoices(current_user.organisation, stripe=gateway(), today=today_utc())
    template = "_invoices.html" if is_htmx() else "invoices.html"
    page = render_template(template, invoices=shown, amount_due_oob=is_htmx())
    return page, shown.status, NO_STORE


@bp.get("/<invoice_id>", endpoint="open")
@requires(Action.SEE_INVOICES)
def open_invoice(invoice_id: str):
    """303 to the invoice's current Stripe page (its PDF with `?pdf=1`), asked of Stripe now."""
    try:
        url = service.invoice_link(
            current_user, invoice_id, pdf=request.args.get("pdf") == "1", stripe=gateway()
        )
    except service.InvoiceNotFound:
        abort(404, "There is no such invoice of your organisation.")
    except service.InvoicesProblem as problem:
        page = render_template(
            "invoice_error.html", problem=problem, retry_url=request.full_path.rstrip("?")
        )
        return page, problem.status, NO_STORE
    return redirect(url, code=303), NO_STORE
