"""Set-based loading of what the calculator needs: an organisation's tenants with their pauses,
its identities with their billable periods, and its price list, each in one query whatever
their number (identities streamed in batches).

Every query is cut to a window of days, and optionally to one tenant; nothing here applies a
billing rule beyond leaving out rows that cannot touch the window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, literal, or_, select

from billing_app.extensions import db
from billing_app.figures.proration import DateRange, PriceEntry
from billing_app.models import BillablePeriod, Identity, Price, Tenant, TenantPause

BATCH = 2000
"""Identity rows fetched at a time."""


TENANT_COLUMNS = (
    Tenant.id,
    Tenant.external_id,
    Tenant.name,
    Tenant.microsoft_tenant_id,
    Tenant.onboarded_on,
    Tenant.offboarded_on,
)
"""What is read of a tenant, in the order of TenantFacts' fields."""


@dataclass(frozen=True, slots=True)
class TenantFacts:
    """A tenant as the import file gives it, and as its page names it."""

    id: int
    external_id: str
    name: str
    microsoft_tenant_id: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None


@dataclass(frozen=True, slots=True)
class TenantRow(TenantFacts):
    """A tenant as the calculator reads it: its facts and its pauses."""

    pauses: list[DateRange]


@dataclass(slots=True)
class IdentityRow:
    """An identity as the calculator reads it, with its billable periods."""

    id: int
    tenant_id: int
    external_id: str
    display_name: str
    user_principal_name: str
    periods: list[DateRange]


def _tenant_in(start: dt.date, end: dt.date) -> ColumnElement[bool]:
    """Tenants onboarded at some point in [start, end)."""
    return and_(
        Tenant.onboarded_on < end,
        or_(Tenant.offboarded_on.is_(None), Tenant.offboarded_on > start),
    )


Tenants = int | Collection[int] | None
"""All of an organisation's tenants (None), one (its id), or some (their ids)."""


def _of(organisation_id: int, tenant_id: Tenants) -> tuple[ColumnElement[bool], ...]:
    """The organisation's tenants, only one of them, or only some."""
    if tenant_id is None:
        return (Tenant.organisation_id == organisation_id,)
    if isinstance(tenant_id, int):
        return (Tenant.organisation_id == organisation_id, Tenant.id == tenant_id)
    return (Tenant.organisation_id == organisation_id, Tenant.id.in_(list(tenant_id)))


def tenants(
    organisation_id: int, start: dt.date, end: dt.date, tenant_id: Tenants = None
) -> list[TenantRow]:
    """Tenants onboarded at some point in [start, end), with their pauses there: two
    queries."""
    rows = {
        row.id: TenantRow(*row, pauses=[])
        for row in db.session.execute(
            select(*TENANT_COLUMNS).where(*_of(organisation_id, tenant_id), _tenant_in(start, end))
        )
    }
    if not rows:
        return []
    pauses = db.session.execute(
        select(TenantPause.tenant_id, TenantPause.from_date, TenantPause.until_date)
        .join(Tenant, Tenant.id == TenantPause.tenant_id)
        .where(
            *_of(organisation_id, tenant_id),
            _tenant_in(start, end),
            TenantPause.from_date < end,
            or_(TenantPause.until_date.is_(None), TenantPause.until_date > start),
        )
    )
    for row_tenant_id, from_date, until_date in pauses:
        rows[row_tenant_id].pauses.append((from_date, until_date))
    return list(rows.values())


def tenant_ids(organisation_id: int, start: dt.date, end: dt.date) -> list[int]:
    """The ids of the tenants onboarded at some point in [start, end): one query."""
    return list(
        db.session.scalars(
            select(Tenant.id).where(
                Tenant.organisation_id == organisation_id, _tenant_in(start, end)
            )
        )
    )


def identities(
    organisation_id: int,
    start: dt.date,
    end: dt.date,
    counted_end: dt.date,
    tenant_id: Tenants = None,
    details: bool = True,
) -> Iterator[IdentityRow]:
    """The identities of tenants onboarded at some point in [start, end), each with its
    billable periods overlapping [start, counted_end): one query, streamed in batches when it
    reads every tenant. Some tenants' identities are read at once: streaming takes a
    server-side cursor, for which PostgreSQL plans to give the first rows soonest, by walking
    every billable period of the database in identity order rather than the few tenants'.
    Without `details`, names are left empty (all that totals need, and a lighter query)."""
    named = (Identity.external_id, Identity.display_name, Identity.user_principal_name)
    empty = (literal(""), literal(""), literal(""))
    streamed = {"yield_per": BATCH} if tenant_id is None else {}
    rows = db.session.execute(
        select(
            Identity.id,
            Identity.tenant_id,
            *(named if details else empty),
            BillablePeriod.from_date,
            BillablePeriod.until_date,
        )
        .join(BillablePeriod, BillablePeriod.identity_id == Identity.id)
        .join(Tenant, Tenant.id == Identity.tenant_id)
        .where(
            Identity.organisation_id == organisation_id,
            *_of(organisation_id, tenant_id),
            _tenant_in(start, end),
            BillablePeriod.from_date < counted_end,
            or_(BillablePeriod.until_date.is_(None), BillablePeriod.until_date > start),
        )
        .order_by(Identity.id)
        .execution_options(**streamed)
    )
    identity: IdentityRow | None = None
    for identity_id, row_tenant_id, external_id, name, upn, from_date, until_date in rows:
        if identity is None or identity.id != identity_id:
            if identity is not None:
                yield identity
            identity = IdentityRow(identity_id, row_tenant_id, external_id, name, upn, [])
        identity.periods.append((from_date, until_date))
    if identity is not None:
        yield identity


def prices(organisation_id: int, before: dt.date) -> list[PriceEntry]:
    """The price list entries from before `before`, newest first."""
    return [
        (from_month, Decimal(unit_price), currency)
        for from_month, unit_price, currency in db.session.execute(
            select(Price.from_month, Price.unit_price, Price.currency)
            .where(Price.organisation_id == organisation_id, Price.from_month < before)
            .order_by(Price.from_month.desc())
        )
    ]
