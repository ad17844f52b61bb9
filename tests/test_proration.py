"""Billable days, prorated units and costs: the pure interval arithmetic, the one calculator
(`figures.calculator.user_lines`) and its projections over the database, to the cent."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import event

from billing_app.extensions import db
from billing_app.figures import calculator
from billing_app.figures.calculator import month_usage, monthly_totals, user_lines
from billing_app.figures.months import (
    FIRST_MONTH,
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
    today_utc,
)
from billing_app.figures.proration import (
    BillableDays,
    NoPriceError,
    counted_window,
    prorated_cost,
    prorated_units,
)
from billing_app.models import Organisation, Price
from tests.factories import ALWAYS, add_tenant, billable_days, d, make_organisation


def lines(organisation, months, today, tenant_id=None):
    """The organisation's (or one tenant's) per-user lines of `months`, streamed, as
    `users.csv` reads them."""
    data = calculator.load(organisation.id, months, today, tenant_id)
    return user_lines(data.tenants, data.identities, data.prices, months, today)


def days(count: int, first: str | None = None, last: str | None = None) -> BillableDays:
    return BillableDays(count, first and d(first), last and d(last))


OPEN = None
MARCH = Month(2026, 3)

# (case, month, periods, tenant keyword arguments, today, expected)
INTERVAL_CASES = [
    ("february 2026 has 28 days", Month(2026, 2), [("2026-01-01", OPEN)], {}, None,
     days(28, "2026-02-01", "2026-02-28")),
    ("february 2028 is a leap month", Month(2028, 2), [("2027-12-01", OPEN)], {}, None,
     days(29, "2028-02-01", "2028-02-29")),
    ("a 30-day month", Month(2026, 4), [("2026-01-01", OPEN)], {}, None,
     days(30, "2026-04-01", "2026-04-30")),
    ("a 31-day month", Month(2026, 1), [("2025-06-01", OPEN)], {}, None,
     days(31, "2026-01-01", "2026-01-31")),
    ("period exactly the month", MARCH, [("2026-03-01", "2026-04-01")], {}, None,
     days(31, "2026-03-01", "2026-03-31")),
    ("period ending on the first day is exclusive", MARCH, [("2026-02-01", "2026-03-01")], {},
     None, days(0)),
    ("period starting on the next month's first day", MARCH, [("2026-04-01", OPEN)], {}, None,
     days(0)),
    ("period of the last day only", MARCH, [("2026-03-31", "2026-04-01")], {}, None,
     days(1, "2026-03-31", "2026-03-31")),
    ("period of the first day only", MARCH, [("2026-02-10", "2026-03-02")], {}, None,
     days(1, "2026-03-01", "2026-03-01")),
    ("no periods", MARCH, [], {}, None, days(0)),
    ("overlapping periods count each day once", MARCH,
     [("2026-03-01", "2026-03-10"), ("2026-03-05", "2026-03-20")], {}, None,
     days(19, "2026-03-01", "2026-03-19")),
    ("identical periods", MARCH, [("2026-03-05", "2026-03-08")] * 3, {}, None,
     days(3, "2026-03-05", "2026-03-07")),
    ("a period inside another", MARCH,
     [("2026-02-01", OPEN), ("2026-03-10", "2026-03-12")], {}, None,
     days(31, "2026-03-01", "2026-03-31")),
    ("touching periods", MARCH, [("2026-03-10", "2026-03-20"), ("2026-03-01", "2026-03-10")],
     {}, None, days(19, "2026-03-01", "2026-03-19")),
    ("a gap between periods", MARCH,
     [("2026-03-20", "2026-03-25"), ("2026-03-02", "2026-03-04")], {}, None,
     days(7, "2026-03-02", "2026-03-24")),
    ("pause across the start of the month", MARCH, [("2026-01-01", OPEN)],
     {"pauses": [("2026-02-20", "2026-03-05")]}, None, days(27, "2026-03-05", "2026-03-31")),
    ("pause across the end of the month", MARCH, [("2026-01-01", OPEN)],
     {"pauses": [("2026-03-25", "2026-04-10")]}, None, days(24, "2026-03-01", "2026-03-24")),
    ("open pause", MARCH, [("2026-01-01", OPEN)], {"pauses": [("2026-03-10", OPEN)]}, None,
     days(9, "2026-03-01", "2026-03-09")),
    ("pause in the middle", MARCH, [("2026-01-01", OPEN)],
     {"pauses": [("2026-03-10", "2026-03-15")]}, None, days(26, "2026-03-01", "2026-03-31")),
    ("overlapping pauses", MARCH, [("2026-01-01", OPEN)],
     {"pauses": [("2026-03-10", "2026-03-15"), ("2026-03-12", "2026-03-20")]}, None,
     days(21, "2026-03-01", "2026-03-31")),
    ("paused the whole month", MARCH, [("2026-01-01", OPEN)],
     {"pauses": [("2026-02-01", "2026-05-01")]}, None, days(0)),
    ("mid-month offboarding", MARCH, [("2026-01-01", OPEN)],
     {"offboarded_on": d("2026-03-15")}, None, days(14, "2026-03-01", "2026-03-14")),
    ("offboarded on the first day", MARCH, [("2026-01-01", OPEN)],
     {"offboarded_on": d("2026-03-01")}, None, days(0)),
    ("offboarded on the next month's first day", MARCH, [("2026-01-01", OPEN)],
     {"offboarded_on": d("2026-04-01")}, None, days(31, "2026-03-01", "2026-03-31")),
    ("mid-month onboarding", MARCH, [("2026-01-01", OPEN)],
     {"onboarded_on": d("2026-03-12")}, None, days(20, "2026-03-12", "2026-03-31")),
    ("onboarded on the last day", MARCH, [("2026-01-01", OPEN)],
     {"onboarded_on": d("2026-03-31")}, None, days(1, "2026-03-31", "2026-03-31")),
    ("onboarded next month", MARCH, [("2026-01-01", OPEN)],
     {"onboarded_on": d("2026-04-01")}, None, days(0)),
    ("all rules at once", MARCH,
     [("2026-03-03", "2026-03-08"), ("2026-03-06", "2026-03-12"), ("2026-03-20", OPEN)],
     {"onboarded_on": d("2026-03-04"), "offboarded_on": d("2026-03-28"),
      "pauses": [("2026-03-07", "2026-03-09")]}, None,
     days(14, "2026-03-04", "2026-03-27")),
    ("current month counts up to today", MARCH, [("2026-01-01", OPEN)], {}, d("2026-03-17"),
     days(17, "2026-03-01", "2026-03-17")),
    ("current month on its first day", MARCH, [("2026-01-01", OPEN)], {}, d("2026-03-01"),
     days(1, "2026-03-01", "2026-03-01")),
    ("current month, period starting after today", MARCH, [("2026-03-20", OPEN)], {},
     d("2026-03-17"), days(0)),
    ("an earlier month counts whole", MARCH, [("2026-01-01", OPEN)], {}, d("2026-04-01"),
     days(31, "2026-03-01", "2026-03-31")),
    ("a later month counts nothing", MARCH, [("2026-01-01", OPEN)], {}, d("2026-02-28"),
     days(0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("month", "periods", "tenant", "today", "expected"),
    [case[1:] for case in INTERVAL_CASES],
    ids=[case[0] for case in INTERVAL_CASES],
)
def test_billable_days(month, periods, tenant, today, expected):
    tenant = {"onboarded_on": d("2025-01-01")} | tenant
    tenant["pauses"] = [(d(a), b and d(b)) for a, b in tenant.get("pauses", [])]
    periods = [(d(a), b and d(b)) for a, b in periods]
    assert billable_days(periods, month, today=today, **tenant) == expected


COST_CASES = [
    ("2.97", 15, 30, "1.49"),  # 1.485: half a cent rounds up
    ("0.01", 15, 30, "0.01"),  # 0.005
    ("0.03", 5, 30, "0.01"),  # 0.005
    ("3.33", 15, 30, "1.67"),  # 1.665 (a float would give 1.66)
    ("3.00", 10, 31, "0.97"),  # 0.9677…
    ("3.00", 1, 31, "0.10"),  # 0.0967…
    ("3.00", 31, 31, "3.00"),
    ("3.00", 0, 31, "0.00"),
    ("2.9750", 10, 28, "1.06"),  # 1.0625
    ("2.9750", 29, 29, "2.98"),  # 2.975
    ("1000000.00", 1, 3, "333333.33"),
]


@pytest.mark.parametrize(("price", "billable", "month_days", "expected"), COST_CASES)
def test_prorated_cost(price, billable, month_days, expected):
    cost = prorated_cost(Decimal(price), billable, month_days)
    assert cost == Decimal(expected)
    assert cost.as_tuple().exponent == -2


def test_prorated_units_are_exact_decimals():
    assert prorated_units(15, 30) == Decimal("0.5")
    assert prorated_units(10, 31).quantize(Decimal("0.0001")) == Decimal("0.3226")
    assert isinstance(prorated_units(1, 3), Decimal)


def test_counted_window():
    assert counted_window(MARCH, d("2026-03-17")) == (d("2026-03-01"), d("2026-03-18"))
    assert counted_window(MARCH, d("2026-03-31")) == (d("2026-03-01"), d("2026-04-01"))
    assert counted_window(MARCH, d("2026-07-01")) == (d("2026-03-01"), d("2026-04-01"))
    assert counted_window(MARCH, d("2026-02-01")) == (d("2026-03-01"), d("2026-03-01"))


# --- Against the database --------------------------------------------------------------------


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def organisation(ctx) -> Organisation:
    return make_organisation(unit_price="2.97")


LATER = "2026-06-15"


def test_month_usage_lines_and_totals(organisation):
    add_tenant(
        organisation,
        "contoso",
        pauses=(("2026-04-10", "2026-04-15"),),
        users=(
            ("Grace Hopper", ALWAYS),
            ("ada Lovelace", (("2026-04-16", None),)),
            ("Alan Turing", (("2026-04-01", "2026-04-16"), ("2026-04-05", "2026-04-12"))),
            ("Gone Before", (("2026-01-01", "2026-04-01"),)),
        ),
    )
    add_tenant(
        organisation,
        "Bravo Ltd",
        onboarded_on="2026-04-11",
        offboarded_on="2026-04-21",
        users=(("Edsger Dijkstra", ALWAYS),),
    )
    add_tenant(organisation, "Alpha Corp", onboarded_on="2026-04-30")
    add_tenant(organisation, "Not yet", onboarded_on="2026-05-01", users=(("Early", ALWAYS),))
    add_tenant(organisation, "Long gone", offboarded_on="2026-04-01", users=(("Left", ALWAYS),))

    usage = month_usage(organisation, Month(2026, 4), d(LATER))

    assert (usage.month, usage.days_in_month, usage.month_to_date) == (Month(2026, 4), 30, False)
    assert (usage.unit_price, usage.currency) == (Decimal("2.97"), "usd")
    assert usage.counted_end == d("2026-05-01")
    assert [t.name for t in usage.tenants] == ["Alpha Corp", "Bravo Ltd", "contoso"]

    alpha, bravo, contoso = usage.tenants
    assert (alpha.billable_users, alpha.lines, alpha.cost) == (0, (), Decimal(0))
    assert alpha.onboarded_in_month and not alpha.offboarded_in_month

    assert bravo.onboarded_in_month and bravo.offboarded_in_month and not bravo.paused_in_month
    (edsger,) = bravo.lines
    assert (edsger.billable_from, edsger.billable_to) == (d("2026-04-11"), d("2026-04-20"))
    assert (edsger.billable_days, edsger.cost) == (10, Decimal("0.99"))

    assert contoso.paused_in_month and not contoso.onboarded_in_month
    rows = [
        (line.display_name, line.billable_from, line.billable_to, line.billable_days, line.cost)
        for line in contoso.lines
    ]
    assert rows == [
        # 15 of 30 days at 2.97 = 1.485, rounded half up.
        ("ada Lovelace", d("2026-04-16"), d("2026-04-30"), 15, Decimal("1.49")),
        # 1-15 minus the pause 10-14: 10 days.
        ("Alan Turing", d("2026-04-01"), d("2026-04-15"), 10, Decimal("0.99")),
        ("Grace Hopper", d("2026-04-01"), d("2026-04-30"), 25, Decimal("2.48")),
    ]
    for line in contoso.lines:
        assert line.days_in_month == 30
        assert line.unit_price == Decimal("2.97")
        assert line.units == Decimal(line.billable_days) / 30
    assert contoso.cost == Decimal("4.96")
    assert contoso.billable_days == 50
    assert contoso.units.quantize(Decimal("0.0001")) == Decimal("1.6667")
    assert usage.cost == Decimal("5.95")
    assert usage.billable_users == 4
    assert usage.units == Decimal(60) / 30


def test_totals_are_sums_of_rounded_lines(organisation):
    # Each user: 2.97 * 15/30 = 1.485 → 1.49; unrounded the tenant would be 4.455 → 4.46.
    add_tenant(
        organisation, "Three", users=tuple((f"User {i}", (("2026-04-16", None),)) for i in range(3))
    )
    add_tenant(organisation, "One", users=(("Solo", (("2026-04-16", None),)),))
    usage = month_usage(organisation, Month(2026, 4), d(LATER))
    one, three = usage.tenants
    assert [line.cost for line in three.lines] == [Decimal("1.49")] * 3
    assert three.cost == Decimal("4.47")
    assert one.cost == Decimal("1.49")
    assert usage.cost == Decimal("5.96") == sum(t.cost for t in usage.tenants)


def test_february_and_month_lengths(organisation):
    add_tenant(organisation, "Contoso", users=(("Grace", (("2026-02-15", "2026-03-17"),)),))
    february = month_usage(organisation, Month(2026, 2), d(LATER))
    march = month_usage(organisation, Month(2026, 3), d(LATER))
    assert (february.days_in_month, march.days_in_month) == (28, 31)
    (feb_line,) = february.tenants[0].lines
    (mar_line,) = march.tenants[0].lines
    # 14 of 28 days = 1.485; 16 of 31 days = 1.5329…
    assert (feb_line.billable_days, feb_line.cost) == (14, Decimal("1.49"))
    assert (mar_line.billable_days, mar_line.cost) == (16, Decimal("1.53"))
    assert (mar_line.billable_from, mar_line.billable_to) == (d("2026-03-01"), d("2026-03-16"))


def test_current_month_counts_only_to_today(organisation):
    add_tenant(
        organisation, "Contoso", users=(("Grace", ALWAYS), ("Later", (("2026-04-20", None),)))
    )
    usage = month_usage(organisation, Month(2026, 4), d("2026-04-15"))
    assert usage.month_to_date
    assert usage.counted_end == d("2026-04-16")
    assert usage.last_counted_day == d("2026-04-15")
    assert usage.days_in_month == 30
    (grace,) = usage.tenants[0].lines
    assert (grace.billable_days, grace.days_in_month, grace.cost) == (15, 30, Decimal("1.49"))
    assert grace.billable_to == d("2026-04-15")


def test_empty_organisation(organisation):
    usage = month_usage(organisation, Month(2026, 4), d(LATER))
    assert usage.tenants == ()
    assert (usage.billable_users, usage.units, usage.cost) == (0, Decimal(0), Decimal(0))


def test_price_change_keeps_earlier_months(organisation):
    db.session.add(
        Price(
            organisation=organisation,
            from_month=d("2026-04-01"),
            unit_price=Decimal("4.00"),
            currency="usd",
        )
    )
    db.session.commit()
    add_tenant(organisation, "Contoso", users=(("Grace", ALWAYS),))
    prices = {
        m: month_usage(organisation, Month(2026, m), d(LATER)).unit_price for m in (1, 3, 4, 6)
    }
    assert prices == {1: Decimal("2.97"), 3: Decimal("2.97"), 4: Decimal("4"), 6: Decimal("4")}
    assert month_usage(organisation, Month(2026, 3), d(LATER)).cost == Decimal("2.97")
    assert month_usage(organisation, Month(2026, 4), d(LATER)).cost == Decimal("4.00")


def test_no_price_is_a_clear_error(ctx):
    organisation = make_organisation("late-msp")
    organisation.prices[0].from_month = d("2026-03-01")
    db.session.commit()
    with pytest.raises(NoPriceError, match="no unit price for February 2026"):
        month_usage(organisation, Month(2026, 2), d(LATER))
    assert month_usage(organisation, Month(2026, 3), d(LATER)).unit_price == Decimal("3")


def test_other_organisations_are_not_counted(organisation):
    other = make_organisation("other-msp")
    add_tenant(other, "Contoso", users=(("Someone else", ALWAYS),))
    add_tenant(organisation, "Contoso", users=(("Grace", ALWAYS),))
    usage = month_usage(organisation, Month(2026, 4), d(LATER))
    assert [line.display_name for t in usage.tenants for line in t.lines] == ["Grace"]


def count_queries(organisation: Organisation, function):
    """The result of `function` and how many statements it ran (the organisation's own row,
    expired by the last commit, loaded beforehand)."""
    db.session.refresh(organisation)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        result = function()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return result, len(statements)


def test_a_constant_number_of_queries(organisation):
    add_tenant(organisation, "One", users=(("Grace", ALWAYS),))
    _, small = count_queries(
        organisation, lambda: month_usage(organisation, Month(2026, 4), d(LATER))
    )
    for i in range(20):
        add_tenant(
            organisation,
            f"Tenant {i}",
            pauses=(("2026-04-02", "2026-04-03"),),
            users=tuple((f"User {i}-{j}", ALWAYS) for j in range(5)),
        )
    usage, large = count_queries(
        organisation, lambda: month_usage(organisation, Month(2026, 4), d(LATER))
    )
    assert usage.billable_users == 101
    assert small == large <= 4
    _, totals = count_queries(organisation, lambda: monthly_totals(organisation, d(LATER)))
    assert totals <= 4


def test_monthly_totals_match_month_usage(organisation):
    db.session.add(
        Price(
            organisation=organisation,
            from_month=d("2026-03-01"),
            unit_price=Decimal("3.33"),
            currency="usd",
        )
    )
    db.session.commit()
    add_tenant(
        organisation,
        "Contoso",
        pauses=(("2026-01-20", "2026-02-03"), ("2026-04-28", None)),
        users=(
            ("Grace", ALWAYS),
            ("Ada", (("2026-01-15", "2026-03-16"),)),
            ("Alan", (("2026-02-10", "2026-02-11"), ("2026-03-31", "2026-04-02"))),
        ),
    )
    add_tenant(
        organisation,
        "Bravo",
        onboarded_on="2026-02-14",
        offboarded_on="2026-05-10",
        users=(("Edsger", ALWAYS),),
    )
    today = d("2026-05-20")
    totals = monthly_totals(organisation, today)
    assert [month for month, _ in totals] == [Month(2026, m) for m in range(1, 6)]
    for month, total in totals:
        assert total == month_usage(organisation, month, today).cost
    assert totals[4][1] > 0


def test_monthly_totals_leave_out_months_without_price(ctx):
    organisation = make_organisation("late-msp")
    organisation.prices[0].from_month = d("2026-03-01")
    db.session.commit()
    add_tenant(organisation, "Contoso", users=(("Grace", ALWAYS),))
    totals = monthly_totals(organisation, d("2026-04-10"))
    assert totals == [(Month(2026, 3), Decimal("3.00")), (Month(2026, 4), Decimal("1.00"))]


# --- Months ----------------------------------------------------------------------------------


# --- The one calculator and its projections -----------------------------------------------


def _two_tenants(organisation: Organisation) -> tuple:
    contoso = add_tenant(
        organisation,
        "Contoso",
        pauses=(("2026-04-10", "2026-04-15"),),
        users=(("Grace", ALWAYS), ("Alan", (("2026-03-20", "2026-04-05"),))),
    )
    fabrikam = add_tenant(
        organisation,
        "Fabrikam",
        onboarded_on="2026-04-12",
        users=(("Ada", (("2026-03-01", None),)),),
    )
    return contoso, fabrikam


@pytest.mark.parametrize(
    ("month", "periods", "tenant", "today", "expected"),
    [case[1:] for case in INTERVAL_CASES],
    ids=[case[0] for case in INTERVAL_CASES],
)
def test_interval_cases_priced_by_the_calculator(month, periods, tenant, today, expected):
    """The same table through `user_lines` with a price: one line, its cost the rounded share."""
    tenant = {"onboarded_on": d("2025-01-01")} | tenant
    pauses = [(d(a), b and d(b)) for a, b in tenant.get("pauses", [])]
    row = calculator.TenantRow(
        1, "t-1", "Contoso", "m", tenant["onboarded_on"], tenant.get("offboarded_on"), pauses
    )
    identity = calculator.IdentityRow(7, 1, "u-7", "Grace", "grace@example.com", [])
    identity.periods.extend((d(a), b and d(b)) for a, b in periods)
    price = [(d("2025-01-01"), Decimal("3.10"), "usd")]
    found = list(calculator.user_lines([row], [identity], price, [month], today or month.end))
    if expected.days == 0:
        assert found == []
        return
    [line] = found
    assert (line.billable_days, line.billable_from, line.billable_to) == (
        expected.days,
        expected.first,
        expected.last,
    )
    assert line.cost == prorated_cost(Decimal("3.10"), expected.days, month.days)
    assert (line.tenant_id, line.month, line.unit_price) == (1, month, Decimal("3.10"))


def test_lines_are_streamed_and_are_the_report_lines(organisation):
    _two_tenants(organisation)
    april, today = Month(2026, 4), d(LATER)
    streamed = lines(organisation, [april], today)
    assert iter(streamed) is streamed
    usage = month_usage(organisation, april, today)
    assert sorted(streamed, key=lambda line: line.identity_id) == sorted(
        (line for tenant in usage.tenants for line in tenant.lines),
        key=lambda line: line.identity_id,
    )


def test_one_tenant_and_the_month_before(organisation):
    contoso, fabrikam = _two_tenants(organisation)
    march, april, today = Month(2026, 3), Month(2026, 4), d(LATER)
    found = list(lines(organisation, [march, april], today, tenant_id=contoso.id))
    assert {line.tenant_id for line in found} == {contoso.id}
    by_month = {m: sorted(ln.display_name for ln in found if ln.month == m) for m in (march, april)}
    assert by_month == {march: ["Alan", "Grace"], april: ["Alan", "Grace"]}
    for month in (march, april):
        [tenant] = month_usage(organisation, month, today, tenant_id=contoso.id).tenants
        whole = next(
            t for t in month_usage(organisation, month, today).tenants if t.tenant_id == contoso.id
        )
        assert tenant == whole
        assert tenant.lines == tuple(
            sorted((ln for ln in found if ln.month == month), key=lambda ln: ln.display_name)
        )
    assert month_usage(organisation, april, today, tenant_id=fabrikam.id).billable_users == 1


def test_page_totals_and_chart_totals_are_sums_of_the_lines(organisation):
    _two_tenants(organisation)
    today = d(LATER)
    months = available_months(today)[::-1]
    found = list(lines(organisation, months, today))
    for month, total in monthly_totals(organisation, today):
        assert total == sum(line.cost for line in found if line.month == month)
    april = calculator.month_totals(organisation, Month(2026, 4), today)
    for tenant in april.tenants:
        mine = [
            ln for ln in found if ln.month == Month(2026, 4) and ln.tenant_id == tenant.tenant_id
        ]
        assert (tenant.billable_users, tenant.billable_days, tenant.cost) == (
            len(mine),
            sum(ln.billable_days for ln in mine),
            sum((ln.cost for ln in mine), Decimal(0)),
        )
    assert april.cost > 0


def test_month_values():
    november = Month.parse("2026-11")
    assert (november.year, november.month) == (2026, 11)
    assert (str(november), november.label) == ("2026-11", "November 2026")
    assert (november.first_day, november.end, november.days) == (
        d("2026-11-01"),
        d("2026-12-01"),
        30,
    )
    assert Month(2026, 12).next() == Month(2027, 1) and Month(2026, 1).previous() == Month(2025, 12)
    assert Month(2028, 2).days == 29 and Month(2026, 2).days == 28
    assert Month(2026, 2) < Month(2026, 10) < Month(2027, 1)
    assert d("2026-11-30") in november and d("2026-12-01") not in november
    assert Month.of(d("2026-07-31")) == Month(2026, 7)


@pytest.mark.parametrize(
    "value", ["2026-1", "2026-013", "26-01", "2026/01", " 2026-01", "2026-01 ", "2026-00",
              "2026-13", "\uff12\uff10\uff12\uff16-01", "2026-01-01", "", "0000-01"],
)  # fmt: skip
def test_month_parse_is_strict(value):
    with pytest.raises(ValueError):
        Month.parse(value)


def test_available_months():
    assert available_months(d("2026-03-31")) == [Month(2026, 3), Month(2026, 2), Month(2026, 1)]
    assert available_months(d("2026-01-01")) == [FIRST_MONTH]
    assert len(available_months(d("2027-12-05"))) == 24
    assert available_months(d("2025-12-31")) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Choose a month"),
        ("", "Choose a month"),
        ("2026-13", "“2026-13” is not a month"),
        ("x" * 500, "is not a month"),
        ("2025-12", "Usage is available from January 2026; December 2025 is earlier."),
        ("2026-05", "May 2026 has not started yet; the latest month is April 2026."),
    ],
)
def test_parse_requested_month_refuses(value, message):
    with pytest.raises(MonthNotAvailable, match=re.escape(message)) as refused:
        parse_requested_month(value, d("2026-04-15"))
    assert len(str(refused.value)) < 120
    assert isinstance(refused.value, ValueError)


def test_parse_requested_month_accepts_available_months():
    today = d("2026-04-15")
    assert parse_requested_month("2026-01", today) == FIRST_MONTH
    assert parse_requested_month("2026-04", today) == Month(2026, 4)


def test_today_utc():
    assert today_utc() == dt.datetime.now(dt.UTC).date()
