"""The demo's commands, `flask --app dev.demo.app demo ...`: the demo sign-ins, and a year of
invoices on the local Stripe server. Development tools: the installed app never imports them.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from billing_app.cli import organisation_by_slug, read_json
from billing_app.figures.cache import month_summary
from billing_app.figures.months import FIRST_MONTH, available_months, today_utc
from billing_app.figures.proration import NoPriceError
from billing_app.stripe_gateway import StripeUnavailable, gateway
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


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_cli)
