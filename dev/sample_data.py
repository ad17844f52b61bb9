"""Sample organisations in the import format, generated deterministically from a seed.

The data has what real usage has: tenants onboarded mid-month, paused (some
across a month end, one until further notice) and offboarded; identities joining
and leaving mid-month, with overlapping billable periods; a price change; tenant
names that are long, carry characters Excel forbids in sheet names, look like
formulas or are not ASCII.

    python -m dev.sample_data --demo > dev/demo/northwind.json
    python -m dev.sample_data --slug big-msp --tenants 1000 --identities-per-tenant 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import unicodedata
import uuid
from typing import Any

from billing_app.permissions import Role

START = dt.date(2026, 1, 1)
TODAY = dt.date(2026, 11, 24)

PRICES = (
    {"from_month": "2026-01", "unit_price": "3.00", "currency": "usd"},
    {"from_month": "2026-07", "unit_price": "3.25", "currency": "usd"},
)

MEMBER_MAILBOXES = {
    Role.ADMIN: ("admin", "Ada Admin"),
    Role.FULL_MEMBER: ("member", "Max Member"),
    Role.BILLING: ("finance", "Fiona Finance"),
    Role.EXTERNAL_GUEST: ("guest", "Gus Guest"),
}

# Names a report has to cope with, most telling first: a small organisation gets the first few.
SPECIAL_TENANT_NAMES = (
    "Contoso Professional Services Group International — North America",
    "Smith/Jones Accounting: Tax & Audit?",
    '=HYPERLINK("https://evil.example","Click me")',
    "Müller & Söhne Maschinenbau GmbH",
    "Contoso Professional Services Group International — Europe",
    "+44 Telecom Partners",
    "[Archive] Fabrikam * Backup\\Restore",
    "東京データ株式会社",
    "'Quoted' Holdings'",
    "History",
    "@Home Networks",
    "-Minus Design Studio",
    "Société Générale d'Ingénierie SARL",
    "Łódź Logistics Sp. z o.o.",
    "CONTOSO LTD",
    "Contoso Ltd",
)
COMPANIES = (
    "Contoso", "Fabrikam", "Tailspin Toys", "Wingtip Toys", "Adatum", "Litware", "Proseware",
    "Lamna Healthcare", "Alpine Ski House", "Coho Winery", "Fourth Coffee", "Margie's Travel",
    "Trey Research", "Woodgrove Bank", "Humongous Insurance", "Blue Yonder Airlines",
    "Lucerne Publishing", "Northwind Traders", "Wide World Importers", "VanArsdel",
    "Relecloud", "Bellows College", "Southridge Video", "Consolidated Messenger",
    "City Power & Light", "First Up Consultants", "Graphic Design Institute",
    "School of Fine Art", "Munson's Pickles and Preserves Farm", "Best For You Organics",
)  # fmt: skip
COMPANY_SUFFIXES = ("Ltd", "GmbH", "Inc.", "LLC", "AG", "S.A.", "BV", "Pty Ltd", "& Partners")
FIRST_NAMES = (
    "Grace", "Alan", "Ada", "Linus", "Margaret", "Edsger", "Barbara", "Donald", "Frances",
    "Ken", "Radia", "Tim", "Katherine", "John", "Hedy", "Dennis", "Anita", "Guido", "Sophie",
    "José", "Zoë", "Łukasz", "Søren", "François", "Ýr", "Nguyễn", "Chloé", "Björn", "Ömer",
)  # fmt: skip
LAST_NAMES = (
    "Hopper", "Turing", "Lovelace", "Torvalds", "Hamilton", "Dijkstra", "Liskov", "Knuth",
    "Allen", "Thompson", "Perlman", "Berners-Lee", "Johnson", "McCarthy", "Lamarr", "Ritchie",
    "Borg", "van Rossum", "Wilson", "García", "Müller", "Kowalski", "Østergaard", "O'Brien",
    "Dubois", "Andersson", "Yılmaz", "Nakamura",  # noqa: RUF001
)  # fmt: skip
SPECIAL_DISPLAY_NAMES = (
    "=SUM(A1:A9)",
    "+1 Reception Desk",
    "@channel Notifications",
    "-Shared Mailbox",
    "Conference Room 4/B: Large?",
)


def organisation_data(
    *,
    slug: str,
    tenants: int,
    identities_per_tenant: int,
    seed: int = 0,
    name: str | None = None,
    email_domain: str | None = None,
    billing_email: str | None = None,
    stripe_customer_id: str | None = None,
    today: dt.date = TODAY,
) -> dict[str, Any]:
    """An organisation in the import format, the same for the same arguments."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    domain = email_domain or f"{slug}.example"
    special_count = min(len(SPECIAL_TENANT_NAMES), max(1, tenants * 2 // 5))
    special_at = dict(
        zip(sorted(rng.sample(range(tenants), special_count)), SPECIAL_TENANT_NAMES, strict=False)
    )
    return {
        "organisation": {
            "slug": slug,
            "name": name or slug.replace("-", " ").title(),
            "billing_email": billing_email or f"billing@{domain}",
            "stripe_customer_id": stripe_customer_id,
            "portal_direct_access": False,
            "prices": [dict(price) for price in PRICES],
        },
        "members": [
            {
                "email": f"{mailbox}@{domain}",
                "name": member_name,
                "role": role.value,
                "password": f"demo-{role.value}",
            }
            for role, (mailbox, member_name) in MEMBER_MAILBOXES.items()
        ],
        "tenants": [
            _tenant(rng, index, special_at.get(index), identities_per_tenant, today)
            for index in range(tenants)
        ],
    }


def _day_between(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randint(0, max(0, (last - first).days)))


def _month_end(day: dt.date) -> dt.date:
    """The first day of the month after `day`."""
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _tenant(
    rng: random.Random, index: int, special_name: str | None, identities: int, today: dt.date
) -> dict[str, Any]:
    company = f"{rng.choice(COMPANIES)} {rng.choice(COMPANY_SUFFIXES)}"
    name = special_name or (company if rng.random() < 0.7 else f"{company} ({index + 1})")
    if index == 0 or rng.random() < 0.55:
        onboarded_on = _day_between(rng, dt.date(2025, 3, 1), START - dt.timedelta(days=1))
    else:
        onboarded_on = _day_between(rng, START, today - dt.timedelta(days=20))
    offboarded_on = None
    if index % 12 == 5 and (today - onboarded_on).days > 45:
        offboarded_on = _day_between(rng, onboarded_on + dt.timedelta(days=30), today)
    domain = _domain(name, index)
    return {
        "id": f"t-{index + 1:04d}",
        "name": name,
        "microsoft_tenant_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "onboarded_on": onboarded_on.isoformat(),
        "offboarded_on": offboarded_on and offboarded_on.isoformat(),
        "pauses": _pauses(rng, index, max(onboarded_on, START), offboarded_on or today),
        "identities": [
            _identity(rng, index, number, domain, onboarded_on, today)
            for number in range(identities)
        ],
    }


def _pauses(
    rng: random.Random, index: int, first: dt.date, last: dt.date
) -> list[dict[str, str | None]]:
    if (last - first).days < 40 or index % 7 not in (2, 4):
        return []
    if index % 7 == 2:
        # Across a month end.
        month_end = _month_end(_day_between(rng, first, last - dt.timedelta(days=35)))
        start = month_end - dt.timedelta(days=rng.randint(1, 6))
        until = month_end + dt.timedelta(days=rng.randint(2, 9))
        pauses = [{"from": start.isoformat(), "until": until.isoformat()}]
    else:
        start = _day_between(rng, first, last - dt.timedelta(days=25))
        until = start + dt.timedelta(days=rng.randint(3, 12))
        pauses = [{"from": start.isoformat(), "until": until.isoformat()}]
    if index % 49 == 4:
        # Paused until further notice.
        pauses.append({"from": (last - dt.timedelta(days=6)).isoformat(), "until": None})
    return pauses


def _identity(
    rng: random.Random,
    tenant_index: int,
    number: int,
    domain: str,
    onboarded_on: dt.date,
    today: dt.date,
) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    display_name = f"{first} {last}"
    if rng.random() < 0.01:
        display_name = rng.choice(SPECIAL_DISPLAY_NAMES)
    mailbox = _ascii(f"{first}.{last}").replace(" ", "").replace("'", "") or "user"
    return {
        "id": f"u-{tenant_index + 1:04d}-{number + 1:03d}",
        "display_name": display_name,
        "user_principal_name": f"{mailbox}{number + 1}@{domain}",
        "billable_periods": _billable_periods(rng, onboarded_on, today),
    }


def _billable_periods(
    rng: random.Random, onboarded_on: dt.date, today: dt.date
) -> list[dict[str, str | None]]:
    roll = rng.random()
    if roll < 0.6:
        start = onboarded_on - dt.timedelta(days=rng.randint(0, 90))
    else:
        start = _day_between(rng, onboarded_on, today - dt.timedelta(days=1))
    until = None
    if rng.random() < 0.2 and (today - start).days > 2:
        until = _day_between(rng, start + dt.timedelta(days=1), today)
    periods = [(start, until)]
    roll = rng.random()
    if roll < 0.15 and until is not None and (today - until).days > 10:
        # Left and came back.
        rejoined = _day_between(rng, until + dt.timedelta(days=5), today - dt.timedelta(days=1))
        periods.append((rejoined, None))
    elif roll < 0.35 and ((until or today) - start).days > 2:
        # A second licence overlapping the first.
        second = _day_between(rng, start + dt.timedelta(days=1), (until or today))
        second_until = min(second + dt.timedelta(days=rng.randint(5, 60)), today)
        periods.append(
            (second, None if rng.random() < 0.5 or second_until <= second else second_until)
        )
    return [
        {"from": start.isoformat(), "until": until and until.isoformat()}
        for start, until in periods
    ]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower()


def _domain(name: str, index: int) -> str:
    label = re.sub(r"[^a-z0-9]+", "-", _ascii(name)).strip("-")[:40].strip("-")
    return f"{label or 'tenant'}-{index + 1}.example"


def demo_data() -> dict[str, Any]:
    """Northwind MSP, the organisation of the demo and of `make run`."""
    return organisation_data(
        slug="northwind-msp",
        name="Northwind MSP",
        email_domain="northwind.example",
        billing_email="billing@northwind.example",
        tenants=20,
        identities_per_tenant=15,
        seed=2026,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a sample organisation as import JSON.")
    parser.add_argument("--demo", action="store_true", help="Northwind MSP, the demo data")
    parser.add_argument("--slug", default="sample-msp")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--identities-per-tenant", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = (
        demo_data()
        if args.demo
        else organisation_data(
            slug=args.slug,
            tenants=args.tenants,
            identities_per_tenant=args.identities_per_tenant,
            seed=args.seed,
        )
    )
    sys.stdout.buffer.write(json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
