"""Commands: `flask usage import`, `flask billing ...` staff actions, `flask demo ...`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .extensions import db
from .models import Organisation

usage_cli = AppGroup("usage", help="Usage data.")
billing_cli = AppGroup("billing", help="Billing staff actions.")


def _organisation(slug: str) -> Organisation:
    organisation = db.session.scalar(select(Organisation).where(Organisation.slug == slug))
    if organisation is None:
        raise click.ClickException(f"No organisation with slug {slug!r}.")
    return organisation


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_json(file: Path) -> object:
    """The JSON in `file`, or a one-line ClickException saying why it cannot be read: not
    UTF-8, not JSON, nested deeper than Python parses, a number too long, NaN or Infinity."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise click.ClickException(f"{file} is not UTF-8 text: {error.reason}.") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise click.ClickException(f"{file} is not valid JSON: {error}") from None
    except RecursionError:
        raise click.ClickException(
            f"{file} is not an import file: its JSON is nested far too deeply."
        ) from None
    except ValueError as error:  # a number of thousands of digits, NaN, Infinity
        message = str(error).splitlines()[0]
        raise click.ClickException(f"{file} is not valid JSON: {message}.") from None


@usage_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Import an organisation's members, prices and usage from a JSON file."""
    from .importer import InvalidImportFile, import_file

    try:
        summary = import_file(read_json(file))
    except InvalidImportFile as error:
        raise click.ClickException(f"{file} was not imported: {error}") from error
    click.echo(summary)


@billing_cli.command("link-stripe")
@click.argument("slug")
def link_stripe(slug: str) -> None:
    """Make sure the organisation has a Stripe customer, creating one if needed."""
    from .stripe_gateway import StripeUnavailable, gateway

    organisation = _organisation(slug)
    stripe = gateway()
    try:
        linked = organisation.stripe_customer_id and stripe.customer_exists(
            organisation.stripe_customer_id
        )
        if linked:
            click.echo(f"{slug} is linked to Stripe customer {organisation.stripe_customer_id}.")
            return
        organisation.stripe_customer_id = stripe.create_customer(
            name=organisation.name, email=organisation.billing_email, slug=organisation.slug
        )
    except StripeUnavailable as error:
        raise click.ClickException(f"{slug} could not be linked: {error}") from error
    db.session.commit()
    click.echo(f"{slug} is now linked to Stripe customer {organisation.stripe_customer_id}.")


def _set_portal_direct_access(slug: str, enabled: bool) -> None:
    from .portal.service import set_direct_access

    organisation = _organisation(slug)
    if not set_direct_access(organisation, enabled):
        state = "already whitelisted" if enabled else "not whitelisted"
        click.echo(f"{slug} is {state} for direct Billing Portal access; nothing changed.")
        return
    db.session.commit()
    if enabled:
        click.echo(f"{slug} is now whitelisted: its admins go straight into the Billing Portal.")
    else:
        click.echo(
            f"{slug} is no longer whitelisted: its admins get a login link by email "
            "(billing members still go straight in)."
        )


@billing_cli.command("whitelist")
@click.argument("slug", metavar="ORG")
def whitelist(slug: str) -> None:
    """Let every admin of the organisation straight into the Billing Portal."""
    _set_portal_direct_access(slug, True)


@billing_cli.command("unwhitelist")
@click.argument("slug", metavar="ORG")
def unwhitelist(slug: str) -> None:
    """Send the organisation's admins back to the emailed login link for the Billing Portal."""
    _set_portal_direct_access(slug, False)


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
    try:
        from dev.stripe_local.invoices import create_invoices, demo_year
    except ImportError as error:
        raise click.ClickException("Demo invoices need the development tools (dev/).") from error
    from .figures.cache import month_summary
    from .figures.months import FIRST_MONTH, available_months, today_utc
    from .figures.proration import NoPriceError
    from .stripe_gateway import StripeUnavailable, gateway

    organisation = _organisation(slug)
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
    try:
        from dev.stripe_local.invoices import create_invoices
    except ImportError as error:
        raise click.ClickException("This needs the development tools (dev/).") from error
    import stripe

    from .figures.cache import month_summary
    from .figures.months import Month, today_utc
    from .figures.proration import NoPriceError
    from .stripe_gateway import build_client

    organisation = _organisation(slug)
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
    app.cli.add_command(usage_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(demo_cli)
