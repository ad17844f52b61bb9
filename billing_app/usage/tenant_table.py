"""The Usage page's tenant table: a month's per-tenant totals searched by name or Microsoft
tenant id, sorted, and cut into pages of 50, each tenant beside its figures of the month
before.

`build_table` works on the cached per-tenant totals (`figures.cache.month_summary`) in
plain Python: a thousand tenants are filtered, sorted and paged in under a millisecond
(`bench/tenant_table_bench.py`), so nothing is queried per search, sort or page. The
request's parameters are read by `read_query`, which says in words what is wrong with a
bad one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from billing_app.figures.cache import microsoft_tenant_ids, month_summary, previous_totals
from billing_app.figures.calculator import MonthTotals, TenantTotals
from billing_app.figures.comparison import MonthBefore
from billing_app.formats import shortened
from billing_app.models import Organisation

PAGE_SIZE = 50
"""Tenants shown a page."""
SEARCH_MAX = 100
"""The longest search accepted, in characters (a tenant id is 36)."""
PAGE_MAX_DIGITS = 6


class Sort(StrEnum):
    """The table's orders, as the `sort` parameter writes them (`-` first: descending)."""

    NAME = "name"
    NAME_DESC = "-name"
    USERS = "users"
    USERS_DESC = "-users"
    COST = "cost"
    COST_DESC = "-cost"

    @property
    def column(self) -> str:
        return self.value.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


DEFAULT_SORT = Sort.NAME
FIRST_CLICK = {"name": Sort.NAME, "users": Sort.USERS_DESC, "cost": Sort.COST_DESC}
"""The order a column header asks for when the table is sorted by another column: names
A to Z, the most users and the highest cost first."""


class BadTableQuery(ValueError):
    """A search, sort or page the table cannot show, with the reason in words; for a page
    past the last, the query of the last page."""

    def __init__(self, message: str, last_page: TableQuery | None = None) -> None:
        super().__init__(message)
        self.last_page = last_page


@dataclass(frozen=True, slots=True)
class TableQuery:
    """What the table is asked to show: a search (empty for all), an order and a page."""

    search: str = ""
    sort: Sort = DEFAULT_SORT
    page: int = 1

    def params(self, **changes: object) -> dict[str, str]:
        """The query as GET parameters, defaults left out, with `changes` applied (a new
        search or sort goes back to page 1)."""
        search = str(changes.get("search", self.search))
        sort = Sort(changes.get("sort", self.sort))
        page = int(changes.get("page", self.page))  # type: ignore[call-overload]
        if "search" in changes or "sort" in changes:
            page = int(changes.get("page", 1))  # type: ignore[call-overload]
        params = {}
        if search:
            params["q"] = search
        if sort is not DEFAULT_SORT:
            params["sort"] = sort.value
        if page != 1:
            params["page"] = str(page)
        return params

    def sort_by(self, column: str) -> Sort:
        """The order a click on `column`'s header asks for: the other direction when the
        table is already sorted by it."""
        if self.sort.column != column:
            return FIRST_CLICK[column]
        return Sort(column if self.sort.descending else f"-{column}")

    @property
    def is_default(self) -> bool:
        return self == TableQuery()


def read_query(args: Mapping[str, str]) -> TableQuery:
    """The table query from GET parameters `q`, `sort` and `page`; `BadTableQuery` says
    what is wrong with a bad one."""
    search = " ".join(args.get("q", "").split())
    if len(search) > SEARCH_MAX:
        raise BadTableQuery(
            f"A search can be at most {SEARCH_MAX} characters; this one has {len(search):,}. "
            "Search for part of a tenant's name or its Microsoft tenant id."
        )
    value = args.get("sort", "") or DEFAULT_SORT.value
    try:
        sort = Sort(value)
    except ValueError:
        shown = shortened(value)
        raise BadTableQuery(
            f"The table cannot be sorted by “{shown}”. Sort by name, users or cost "
            "(for example sort=-cost for the highest cost first)."
        ) from None
    raw_page = args.get("page", "") or "1"
    if not (raw_page.isascii() and raw_page.isdigit()) or len(raw_page) > PAGE_MAX_DIGITS:
        shown = shortened(raw_page)
        raise BadTableQuery(f"“{shown}” is not a page number. Pages are numbered from 1.")
    page = int(raw_page)
    if page < 1:
        raise BadTableQuery("Pages are numbered from 1.")
    return TableQuery(search, sort, page)


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant of the table: its month's figures, its Microsoft tenant id, and its figures
    of the month before (zero when it was not onboarded then; None before January 2026)."""

    tenant: TenantTotals
    microsoft_tenant_id: str
    previous_users: int | None
    previous_cost: Decimal | None
    projected: tuple[int, Decimal] | None = None
    """For the current month, the tenant's billable users and cost projected to the month's
    end (what the changes compare, as the headline does); None for a past month."""

    @property
    def compared_users(self) -> int:
        return self.tenant.billable_users if self.projected is None else self.projected[0]

    @property
    def compared_cost(self) -> Decimal:
        return self.tenant.cost if self.projected is None else self.projected[1]

    @property
    def users_change(self) -> int | None:
        if self.previous_users is None:
            return None
        return self.compared_users - self.previous_users

    @property
    def cost_change(self) -> Decimal | None:
        if self.previous_cost is None:
            return None
        return self.compared_cost - self.previous_cost


@dataclass(frozen=True, slots=True)
class TenantTable:
    """A page of the tenant table, with the count of matching tenants and the totals of all
    of them, whatever the search and page."""

    query: TableQuery
    rows: tuple[TenantRow, ...]
    matching: int
    """Tenants matching the search (all of them without one)."""
    total_tenants: int
    pages: int
    """Pages of matching tenants; at least 1, even when none match."""
    totals: MonthTotals
    previous: MonthTotals | None
    """The month before's totals, to compare with (none for January 2026)."""
    problem: str | None = field(default=None)
    last_page: TableQuery | None = field(default=None)
    """For a page past the last, the query of the last page."""
    projected: MonthTotals | None = field(default=None)
    """For the current month, its totals counted to its last day (the headline's projection):
    the changes compare these with the month before, like with like."""

    @property
    def compared(self) -> MonthTotals:
        """The totals the changes are of: the projection for the current month."""
        return self.totals if self.projected is None else self.projected

    @property
    def users_change(self) -> int | None:
        """The change in all tenants' billable users since the month before."""
        if self.previous is None:
            return None
        return self.compared.billable_users - self.previous.billable_users

    @property
    def cost_change(self) -> Decimal | None:
        """The change in all tenants' cost since the month before."""
        if self.previous is None:
            return None
        return self.compared.cost - self.previous.cost

    @property
    def first_shown(self) -> int:
        return (self.query.page - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last_shown(self) -> int:
        return self.first_shown + len(self.rows) - 1 if self.rows else 0


def _matcher(search: str) -> Callable[[TenantTotals, str], bool]:
    needle = search.casefold()
    bare = needle.strip("{}").replace("-", "")

    def match(tenant: TenantTotals, microsoft_tenant_id: str) -> bool:
        if needle in tenant.name.casefold():
            return True
        return bool(bare) and bare in microsoft_tenant_id.casefold().replace("-", "")

    return match


def ordered(tenants: Sequence[TenantTotals], sort: Sort) -> list[TenantTotals]:
    """Tenants (given by name, as the calculator orders them) in the order asked for; ties
    keep the order by name."""
    if sort.column == "name":
        return list(reversed(tenants)) if sort.descending else list(tenants)
    if sort.column == "users":
        return sorted(tenants, key=lambda t: t.billable_users, reverse=sort.descending)
    return sorted(tenants, key=lambda t: t.cost, reverse=sort.descending)


def build_table(
    totals: MonthTotals,
    previous: MonthTotals | None,
    microsoft_tenant_ids: Mapping[int, str],
    query: TableQuery,
    projected: MonthTotals | None = None,
) -> TenantTable:
    """The page of `query` over the month's tenants (`totals`), beside the month before's
    (`previous`; None when there is none); for the current month the changes are of its
    projection (`projected`). A page past the last is `BadTableQuery`."""
    ids = microsoft_tenant_ids
    found: Sequence[TenantTotals] = totals.tenants
    if query.search:
        match = _matcher(query.search)
        found = [t for t in found if match(t, ids.get(t.tenant_id, ""))]
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    if query.page > pages:
        raise BadTableQuery(
            f"There is no page {query.page:,}: "
            + (f"the {len(found):,} tenants" if not query.search else f"the {len(found):,} matches")
            + f" fit on {pages:,} {'page' if pages == 1 else 'pages'}.",
            last_page=TableQuery(query.search, query.sort, pages),
        )
    start = (query.page - 1) * PAGE_SIZE
    shown = ordered(found, query.sort)[start : start + PAGE_SIZE]
    before = MonthBefore(previous)
    month_end = (
        {t.tenant_id: (t.billable_users, t.cost) for t in projected.tenants} if projected else {}
    )
    rows = []
    for tenant in shown:
        users, cost = before.of(tenant.tenant_id) or (None, None)
        at_end = month_end.get(tenant.tenant_id, (0, Decimal(0))) if projected else None
        rows.append(TenantRow(tenant, ids.get(tenant.tenant_id, ""), users, cost, at_end))
    return TenantTable(
        query=query,
        rows=tuple(rows),
        matching=len(found),
        total_tenants=len(totals.tenants),
        pages=pages,
        totals=totals,
        previous=previous,
        projected=projected,
    )


def refused_table(
    totals: MonthTotals, previous: MonthTotals | None, problem: BadTableQuery
) -> TenantTable:
    """The table in place of a bad query: no rows, the reason, and still the totals."""
    return TenantTable(
        query=TableQuery(),
        rows=(),
        matching=0,
        total_tenants=len(totals.tenants),
        pages=1,
        totals=totals,
        previous=previous,
        problem=str(problem),
        last_page=problem.last_page,
    )


# --- Loading ---------------------------------------------------------------------------------


def tenant_table(
    organisation: Organisation, totals: MonthTotals, today: dt.date, args: Mapping[str, str]
) -> tuple[TenantTable, int]:
    """The table the GET parameters `args` ask for over the month's cached totals, and the
    status to answer with (400 for a bad search, sort or page)."""
    previous = previous_totals(organisation, totals.month, today)
    projected = None
    if totals.month_to_date and previous is not None:
        last_day = totals.month.end - dt.timedelta(days=1)
        projected = month_summary(organisation, totals.month, last_day)
    try:
        query = read_query(args)
        ids = microsoft_tenant_ids(organisation)
        table = build_table(totals, previous, ids, query, projected)
    except BadTableQuery as bad:
        return refused_table(totals, previous, bad), 400
    return table, 200
