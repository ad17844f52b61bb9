"""Builders shared by the tests: organisations with a member per role, tenants with pauses
and users, import files, and a signed-in test client. Fixtures live in conftest.py."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import user_lines
from billing_app.figures.months import Month
from billing_app.figures.proration import BillableDays
from billing_app.figures.queries import IdentityRow, TenantRow
from billing_app.models import (
    BillablePeriod,
    Identity,
    Member,
    Organisation,
    Price,
    Tenant,
    TenantPause,
)

ROLES = ("admin", "full_member", "billing", "external_guest")
PASSWORD = "correct horse battery staple"


def d(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


ALWAYS = (("2025-12-01", None),)


def make_organisation(
    slug: str = "northwind-msp",
    *,
    billing_email: str = "billing@northwind.example",
    stripe_customer_id: str | None = None,
    portal_direct_access: bool = False,
    unit_price: str = "3.00",
    currency: str = "usd",
) -> Organisation:
    """An organisation with one member per role, each signing in as `<role>@<slug>.example`."""
    organisation = Organisation(
        slug=slug,
        name=slug.replace("-", " ").title(),
        billing_email=billing_email,
        stripe_customer_id=stripe_customer_id,
        portal_direct_access=portal_direct_access,
    )
    organisation.prices.append(
        Price(from_month=dt.date(2026, 1, 1), unit_price=Decimal(unit_price), currency=currency)
    )
    for role in ROLES:
        member = Member(
            email=f"{role}@{slug}.example", name=role.replace("_", " ").title(), role=role
        )
        member.password_hash = _password_hash()
        organisation.members.append(member)
    db.session.add(organisation)
    db.session.commit()
    return organisation


_HASH: list[str] = []


#: Members made here get a cheap hash of PASSWORD: every sign-in of the suite checks one, and
#: the app's own (scrypt) costs a tenth of a second each time. The hash names its method, so
#: the app checks it as it would any other; members the importer writes get the app's own.
TEST_HASH_METHOD = "pbkdf2:sha256:1000"


def _password_hash() -> str:
    """One cheap hash of PASSWORD, reused."""
    if not _HASH:
        from werkzeug.security import generate_password_hash

        _HASH.append(generate_password_hash(PASSWORD, method=TEST_HASH_METHOD))
    return _HASH[0]


_ids = itertools.count(1)


def add_tenant(
    organisation: Organisation,
    name: str,
    onboarded_on: str = "2025-12-01",
    offboarded_on: str | None = None,
    pauses: tuple[tuple[str, str | None], ...] = (),
    users: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...] = (),
) -> Tenant:
    """A tenant with pauses and users, each user given as (display name, billable periods)."""
    number = next(_ids)
    tenant = Tenant(
        organisation_id=organisation.id,
        external_id=f"t-{number}",
        name=name,
        microsoft_tenant_id=f"00000000-0000-0000-0000-{number:012d}",
        onboarded_on=d(onboarded_on),
        offboarded_on=offboarded_on and d(offboarded_on),
    )
    for start, until in pauses:
        tenant.pauses.append(TenantPause(from_date=d(start), until_date=until and d(until)))
    for display_name, periods in users:
        identity = Identity(
            organisation_id=organisation.id,
            external_id=f"u-{next(_ids)}",
            display_name=display_name,
            user_principal_name=f"{display_name.lower().replace(' ', '.')}@example.com",
        )
        for start, until in periods:
            identity.billable_periods.append(
                BillablePeriod(from_date=d(start), until_date=until and d(until))
            )
        tenant.identities.append(identity)
    db.session.add(tenant)
    db.session.commit()
    return tenant


def northwind() -> dict[str, Any]:
    """A small organisation in the import format."""
    return {
        "organisation": {
            "slug": "northwind-msp",
            "name": "Northwind MSP",
            "billing_email": "billing@northwind.example",
            "stripe_customer_id": None,
            "portal_direct_access": False,
            "prices": [
                {"from_month": "2026-01", "unit_price": "3.00", "currency": "usd"},
                {"from_month": "2026-07", "unit_price": "3.25", "currency": "usd"},
            ],
        },
        "members": [
            {
                "email": "admin@northwind.example",
                "name": "Ada",
                "role": "admin",
                "password": "demo-admin",
            },
            {"email": "finance@northwind.example", "name": "Fiona", "role": "billing"},
        ],
        "tenants": [
            {
                "id": "t-001",
                "name": "Contoso Ltd",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000001",
                "onboarded_on": "2026-01-12",
                "offboarded_on": None,
                "pauses": [{"from": "2026-03-01", "until": "2026-03-08"}],
                "identities": [
                    {
                        "id": "u-001",
                        "display_name": "Grace Hopper",
                        "user_principal_name": "grace@contoso.example",
                        "billable_periods": [{"from": "2026-01-12", "until": None}],
                    },
                    {
                        "id": "u-002",
                        "display_name": "Alan Turing",
                        "user_principal_name": "alan@contoso.example",
                        "billable_periods": [
                            {"from": "2026-01-15", "until": "2026-02-20"},
                            {"from": "2026-02-01", "until": None},
                        ],
                    },
                ],
            },
            {
                "id": "t-002",
                "name": "Fabrikam/Tailspin: Ops?",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000002",
                "onboarded_on": "2026-02-10",
                "offboarded_on": "2026-09-15",
                "pauses": [],
                "identities": [
                    {
                        "id": "u-003",
                        "display_name": "=SUM(A1:A2)",
                        "user_principal_name": "sum@fabrikam.example",
                        "billable_periods": [{"from": "2026-02-10", "until": "2026-06-01"}],
                    }
                ],
            },
            {
                "id": "t-003",
                "name": "Müller & Söhne GmbH",
                "microsoft_tenant_id": "00000000-0000-0000-0000-000000000003",
                "onboarded_on": "2026-05-20",
                "identities": [],
            },
        ],
    }


CSRF_INPUT = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


class Auth:
    """Signs a test client in and out, and carries its CSRF token."""

    def __init__(self, client):
        self.client = client
        self.csrf_token: str | None = None

    def login(self, email: str, password: str = PASSWORD):
        page = self.client.get("/login")
        token = CSRF_INPUT.search(page.get_data(as_text=True)).group(1)
        response = self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        self.csrf_token = token
        if response.status_code == 303:  # signing in renews the CSRF secret
            page = self.client.get("/settings/usage").get_data(as_text=True)
            self.csrf_token = CSRF_INPUT.search(page).group(1)
        return response

    def as_role(self, role: str, slug: str = "northwind-msp"):
        response = self.login(f"{role}@{slug}.example")
        assert response.status_code == 303, response.get_data(as_text=True)
        return self

    def post(self, path: str, data: dict | None = None, htmx: bool = False, **kwargs):
        """POST with the CSRF token, as a form (or as htmx does, in a header)."""
        headers = kwargs.pop("headers", {})
        data = dict(data or {})
        if htmx:
            headers |= {"HX-Request": "true", "X-CSRFToken": self.csrf_token}
        else:
            data.setdefault("csrf_token", self.csrf_token)
        return self.client.post(path, data=data, headers=headers, **kwargs)


def unique_email(prefix: str = "accounts") -> str:
    """An address no other Stripe customer on the shared local Stripe server has."""
    return f"{prefix}+{uuid.uuid4().hex[:10]}@northwind.example"


def update_organisation(app, **values) -> None:
    """Change the (only) organisation's columns directly in the database."""
    with app.app_context():
        organisation = db.session.scalar(select(Organisation))
        for name, value in values.items():
            setattr(organisation, name, value)
        db.session.commit()


def billable_days(
    periods,
    month: Month,
    *,
    onboarded_on: dt.date,
    offboarded_on: dt.date | None = None,
    pauses=(),
    today: dt.date | None = None,
) -> BillableDays:
    """The billable days in `month` of one identity with these billable periods, in a tenant
    with this onboarding, offboarding and these pauses, as `user_lines` counts them."""
    tenant = TenantRow(0, "", "", "", onboarded_on, offboarded_on, list(pauses))
    identity = IdentityRow(0, 0, "", "", "", list(periods))
    counted_on = month.end if today is None else today
    prices = [(month.first_day, Decimal(0), "")]
    found = list(user_lines([tenant], [identity], prices, [month], counted_on))
    if not found:
        return BillableDays(0, None, None)
    return BillableDays(found[0].billable_days, found[0].billable_from, found[0].billable_to)
