"""An organisation that tries every proration rule and every quoting rule of the exports, for
the tenant page and CSV tests: pauses across month ends and until further notice, tenants
onboarded and offboarded mid-month, users joining, leaving and coming back, a price change,
and names with commas, quotes, line breaks and formula text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing_app.extensions import db
from billing_app.models import Organisation, Price, Tenant
from tests.factories import ALWAYS, add_tenant

FORMULA_NAMES = (
    "=SUM(A1:A2)",
    "+44 20 7946 0000",
    "-Shared Mailbox",
    "@channel",
    "\tTabbed",
    "\rReturned",
)
AWKWARD_NAMES = ('Smith, Jones & "Partners"', "Line\nbreak Ltd", "Müller & Söhne GmbH 😀")


def build(organisation: Organisation) -> dict[str, Tenant]:
    """The tenants, by a short key; the price (3.00 in the `organisation` fixture) goes up
    to 3.33 in July 2026."""
    db.session.add(
        Price(
            organisation_id=organisation.id,
            from_month=dt.date(2026, 7, 1),
            unit_price=Decimal("3.33"),
            currency="usd",
        )
    )
    db.session.commit()
    tenants = {
        "contoso": add_tenant(
            organisation,
            "Contoso Ltd",
            pauses=(("2026-03-28", "2026-04-05"), ("2026-08-10", "2026-08-12")),
            users=(
                ("Grace Hopper", ALWAYS),
                ("Alan Turing", (("2026-01-15", "2026-02-20"), ("2026-02-01", "2026-05-11"))),
                ("Ada Lovelace", (("2026-04-16", None),)),
                ("Back Again", (("2026-01-01", "2026-03-01"), ("2026-06-10", None))),
                *((name, (("2026-02-03", "2026-09-20"),)) for name in FORMULA_NAMES),
            ),
        ),
        "awkward": add_tenant(
            organisation,
            AWKWARD_NAMES[0],
            onboarded_on="2026-02-10",
            offboarded_on="2026-10-15",
            users=tuple((name, (("2026-02-10", None),)) for name in AWKWARD_NAMES),
        ),
        "formula": add_tenant(
            organisation,
            '=HYPERLINK("https://evil.example","x")',
            onboarded_on="2026-05-20",
            pauses=(("2026-11-25", None),),
            users=(("Edsger Dijkstra", ALWAYS), ("Late Joiner", (("2026-07-31", None),))),
        ),
        "empty": add_tenant(organisation, "Empty Tenant", onboarded_on="2026-06-03"),
        "gone": add_tenant(
            organisation, "Long Gone", offboarded_on="2026-03-16", users=(("Left", ALWAYS),)
        ),
    }
    return tenants
