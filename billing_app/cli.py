"""Commands: `flask usage import`, `flask billing ...` staff actions, `flask demo sign-ins`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
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


@usage_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Import an organisation's members, prices and usage from a JSON file."""
    from .importer import InvalidImportFile, import_file

    try:
        summary = import_file(json.loads(file.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise click.ClickException(f"{file} is not valid JSON: {error}") from error
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
    data = json.loads(file.read_text(encoding="utf-8"))
    click.echo("Demo sign-ins (email / password / role):")
    for member in data.get("members", []):
        click.echo(f"  {member['email']:<32} {member.get('password', '-'):<20} {member['role']}")


def init_app(app: Flask) -> None:
    app.cli.add_command(usage_cli)
    app.cli.add_command(billing_cli)
    app.cli.add_command(demo_cli)
