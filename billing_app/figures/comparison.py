"""A month's tenants beside their figures of the month before: the one comparison the tenant
table and `tenants.csv` show."""

from __future__ import annotations

from decimal import Decimal

from billing_app.figures.calculator import MonthTotals


class MonthBefore:
    """Each tenant's billable users and cost in the month before (`previous`; None when there
    is no month before with a price)."""

    def __init__(self, previous: MonthTotals | None) -> None:
        self.previous = previous
        self._tenants = {t.tenant_id: t for t in previous.tenants} if previous else {}

    def of(self, tenant_id: int) -> tuple[int, Decimal] | None:
        """The tenant's billable users and cost the month before: zeros when it was not
        onboarded then, None when there is no month before to compare with."""
        if self.previous is None:
            return None
        earlier = self._tenants.get(tenant_id)
        if earlier is None:
            return 0, Decimal(0)
        return earlier.billable_users, earlier.cost
