"""Commands: `flask usage import` and the `flask billing ...` staff actions. (The demo's
`flask demo ...` commands are development tools: dev/demo/cli.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation

usage_cli = AppGroup("usage", help="Usage data.")
billing_cli = AppGroup("billing", help="Billing staff actions.")


def organisation_by_slug(slug: str) -> Organisation:
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
    from billing_app.importer import InvalidImportFile, import_file

    try:
        summary = import_file(read_json(file))
    except InvalidImportFile as error:
        raise click.ClickException(f"{file} was not imported: {error}") from error
    click.echo(summary)


@billing_cli.command("link-stripe")
@click.argument("slug")
def link_stripe(slug: str) -> None:
    """Make sure the organisation has a Stripe customer, creating one if needed."""
    from billing_app.stripe_gateway import StripeUnavailable, gateway

    organisation = organisation_by_slug(slug)
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
    from billing_app.portal.service import set_direct_access

    organisation = organisation_by_slug(slug)
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


def init_app(app: Flask) -> None:
    app.cli.add_command(usage_cli)
    app.cli.add_command(billing_cli)
