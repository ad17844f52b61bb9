"""One tenant's month as its page shows it: the tenant, its pauses touching the month, its
billable users (paged) with its total, and the users added and removed against the month
before, or why the month cannot be shown.

The figures come from the one calculator asked for this tenant alone (`month_usage` with
`tenant_id`: a handful of queries cut to the tenant, whatever the size of the organisation),
so its total is the tenant's row in the month summary and its sheet in the report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import or_, select

from billing_app.extensions import db
from billing_app.figures.calculator import TenantUsage, UserLine, month_usage
from billing_app.figures.month_request import MonthRefusal, month_request
from billing_app.figures.months import Month
from billing_app.figures.queries import TENANT_COLUMNS, TenantFacts
from billing_app.models import Organisation, Tenant, TenantPause

PAGE_SIZE = 100
"""Billable users shown per page of the tenant's table; the CSV has them all."""
CHANGES_SHOWN = 100
"""Users added (or removed) listed on the page at most; the CSV has them all."""


@dataclass(frozen=True, slots=True)
class Pause:
    """A pause of the tenant: not billed from `start` up to, not including, `until`."""

    start: dt.date
    until: dt.date | None

    @property
    def last_day(self) -> dt.date | None:
        return None if self.until is None else self.until - dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Changes:
    """Users added (billable this month, not the month before) or removed (the reverse)."""

    lines: tuple[UserLine, ...]
    count: int

    @property
    def capped(self) -> bool:
        return self.count > len(self.lines)


@dataclass(frozen=True, slots=True)
class TenantMonth:
    """What the tenant page shows for one month."""

    tenant: TenantFacts
    months: tuple[Month, ...]
    month: Month
    problem: str | None = None
    status: int = 200
    month_to_date: bool = False
    last_counted_day: dt.date | None = None
    unit_price: Decimal | None = None
    currency: str = ""
    usage: TenantUsage | None = None
    """The tenant's figures; None when it was not onboarded at any point in the month."""
    pauses: tuple[Pause, ...] = ()
    previous: Month | None = None
    """The month compared with; None for January 2026 or a month before without a price."""
    previous_usage: TenantUsage | None = None
    added: Changes = field(default_factory=lambda: Changes((), 0))
    removed: Changes = field(default_factory=lambda: Changes((), 0))
    page: int = 1
    pages: int = 1

    @property
    def current(self) -> Month:
        return self.months[0]

    @property
    def lines(self) -> tuple[UserLine, ...]:
        """The billable users on the page shown."""
        if self.usage is None:
            return ()
        start = (self.page - 1) * PAGE_SIZE
        return self.usage.lines[start : start + PAGE_SIZE]

    @property
    def previous_users(self) -> int:
        return self.previous_usage.billable_users if self.previous_usage else 0

    @property
    def previous_cost(self) -> Decimal:
        return self.previous_usage.cost if self.previous_usage else Decimal(0)

    @property
    def first_shown(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1

    @property
    def paused_throughout(self) -> Pause | None:
        """The pause covering every counted day of the month, if any: then the users of the
        month before are not billed because the tenant is paused, not because they left."""
        counted_end = (
            self.last_counted_day + dt.timedelta(days=1)
            if self.last_counted_day is not None
            else self.month.end
        )
        for pause in self.pauses:
            if pause.start <= self.month.first_day and (
                pause.until is None or pause.until >= counted_end
            ):
                return pause
        return None

    @property
    def onboarded_in_month(self) -> bool:
        return self.tenant.onboarded_on in self.month

    @property
    def offboarded_in_month(self) -> bool:
        return self.tenant.offboarded_on is not None and self.tenant.offboarded_on in self.month


def find(organisation_id: int, external_id: str) -> TenantFacts | None:
    """The organisation's tenant with this import-file id; None for an unknown id and for
    another organisation's alike. One query."""
    row = db.session.execute(
        select(*TENANT_COLUMNS).where(
            Tenant.organisation_id == organisation_id, Tenant.external_id == external_id
        )
    ).first()
    return TenantFacts(*row) if row else None


def pauses_touching(tenant_id: int, month: Month) -> tuple[Pause, ...]:
    """The tenant's pauses with at least one day in the month, oldest first. One query."""
    return tuple(
        Pause(start, until)
        for start, until in db.session.execute(
            select(TenantPause.from_date, TenantPause.until_date)
            .where(
                TenantPause.tenant_id == tenant_id,
                TenantPause.from_date < month.end,
                or_(TenantPause.until_date.is_(None), TenantPause.until_date > month.first_day),
            )
            .order_by(TenantPause.from_date)
        ).all()
    )


def tenant_month(
    organisation: Organisation,
    tenant: TenantFacts,
    value: str | None,
    today: dt.date,
    page: str | None = None,
) -> TenantMonth:
    """The tenant's month asked for as `YYYY-MM` (None: the current month), with page `page`
    of its billable users."""
    asked = month_request(organisation, value, today, current_if_missing=True)
    if isinstance(asked, MonthRefusal):
        # A month without a price is the page it is, saying so (200); a bad month is 400.
        status = 200 if asked.no_price else asked.status
        return TenantMonth(tenant, asked.months, asked.month, problem=asked.message, status=status)
    months, month, previous = asked.months, asked.month, asked.previous
    usage = month_usage(organisation, month, today, tenant_id=tenant.id)
    mine = usage.tenants[0] if usage.tenants else None
    before = _usage_in(organisation, tenant, previous, today) if previous else None
    lines = mine.lines if mine else ()
    pages = max(1, -(-len(lines) // PAGE_SIZE))
    return TenantMonth(
        tenant,
        months,
        month,
        month_to_date=usage.month_to_date,
        last_counted_day=usage.last_counted_day,
        unit_price=usage.unit_price,
        currency=usage.currency,
        usage=mine,
        pauses=pauses_touching(tenant.id, month),
        previous=previous,
        previous_usage=before,
        added=_changes(lines, before.lines if before else (), previous is not None),
        removed=_changes(before.lines if before else (), lines, previous is not None),
        page=min(_page_number(page), pages),
        pages=pages,
    )


def _usage_in(
    organisation: Organisation, tenant: TenantFacts, month: Month, today: dt.date
) -> TenantUsage | None:
    """The tenant's usage in `month` (a month with a price); None when it was not onboarded
    then."""
    usage = month_usage(organisation, month, today, tenant_id=tenant.id)
    return usage.tenants[0] if usage.tenants else None


def _changes(these: tuple[UserLine, ...], those: tuple[UserLine, ...], compared: bool) -> Changes:
    """The lines of `these` whose identity has no line in `those`."""
    if not compared:
        return Changes((), 0)
    other = {line.identity_id for line in those}
    found = [line for line in these if line.identity_id not in other]
    return Changes(tuple(found[:CHANGES_SHOWN]), len(found))


def _page_number(value: str | None) -> int:
    """A page number from the query string; anything that is not a positive number is 1."""
    if value is None or not value.isdigit():
        return 1
    return max(1, min(int(value), 1_000_000))
