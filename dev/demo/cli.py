"""The demo's commands, `flask --app dev.demo.app demo ...`: the demo sign-ins, a year of
invoices on the local Stripe server, and one invoice finalized there (the statement's path).
Development tools: the installed app never imports them.
"""

from __future__ import annotations

from pathlib import Path

import click
import stripe
from flask import Flask, current_app
from flask.cli import AppGroup

from billing_app.cli import organisation_by_slug, read_json
from billing_app.figures.cache import month_summary
from billing_app.figures.months import FIRST_MONTH, Month, available_months, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.stripe_gateway import StripeUnavailable, build_client, gateway
from dev.stripe_local.invoices import create_invoices, demo_year

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("sign-ins")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def demo_sign_ins(file: Path) -> None:
    """Print the sign-ins of the members in a demo data file."""
    data = read_json(file)
    click.echo("Demo sign-ins (email / password / role):")
    for member in data.get("members", []):
        click.echo(f"  {member['email']:<32} {member.get('password', '-'):<20} {member['role']}")


@demo_cli.command("invoices")
@click.argument("slug", metavar="ORG")
def demo_invoices(slug: str) -> None:
    """Give the organisation's customer on the local Stripe server a year of invoices."""
    organisation = organisation_by_slug(slug)
    customer = organisation.stripe_customer_id
    if not customer:
        raise click.ClickException(f"{slug} has no Stripe customer: run billing link-stripe first.")
    try:
        if gateway().list_invoices(customer, limit=1):
            click.echo(f"{slug} already has invoices at Stripe; nothing created.")
            return
    except StripeUnavailable as error:
        raise click.ClickException(f"{slug} got no invoices: {error}") from error
    today = today_utc()
    amounts, currency = {}, "usd"
    for month in available_months(today)[1:13]:
        try:
            totals = month_summary(organisation, month, today)
        except NoPriceError:
            continue
        amounts[str(month)] = int(totals.cost.scaleb(2).to_integral_value())
        currency = totals.currency
    specs = demo_year(today, amounts, currency, since=FIRST_MONTH.first_day)
    try:
        created = create_invoices(current_app.config["STRIPE_API_BASE"], customer, specs)
    except (OSError, RuntimeError) as error:
        raise click.ClickException(f"{slug} got no invoices: {error}") from error
    click.echo(f"{slug} now has {len(created)} invoices at Stripe customer {customer}.")


@demo_cli.command("finalize-invoice")
@click.argument("slug", metavar="ORG")
@click.option("--month", help="YYYY-MM (default: last month)")
def demo_finalize_invoice(slug: str, month: str | None) -> None:
    """Local Stripe server only: issue a draft invoice of a month for the organisation and
    finalize it, so that Stripe sends the signed invoice.finalized webhook (the statement)."""
    organisation = organisation_by_slug(slug)
    if not organisation.stripe_customer_id:
        raise click.ClickException(f"{slug} has no Stripe customer: run billing link-stripe first.")
    today = today_utc()
    chosen = Month.parse(month) if month else Month.of(today).previous()
    try:
        totals = month_summary(organisation, chosen, today)
    except NoPriceError as error:
        raise click.ClickException(f"{chosen.label} has no price.") from error
    amount = int(totals.cost.scaleb(2).to_integral_value())
    spec = {"period": str(chosen), "amount": amount, "currency": totals.currency}
    try:
        [draft] = create_invoices(
            current_app.config["STRIPE_API_BASE"],
            organisation.stripe_customer_id,
            [spec | {"status": "draft"}],
        )
        invoice = build_client(current_app).v1.invoices.finalize_invoice(draft["id"])
    except (OSError, RuntimeError, stripe.StripeError) as error:
        raise click.ClickException(f"No invoice finalized: {error}") from error
    click.echo(
        f"Invoice {invoice.number} ({chosen.label}) finalized; Stripe sends invoice.finalized "
        "to the webhook, and the worker mails the statement to the confirmed contacts."
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_cli)
