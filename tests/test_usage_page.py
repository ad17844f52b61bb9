"""The month picker, the month summary with its chart, and the itemized report download."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import month_usage, monthly_totals
from billing_app.figures.months import (
    Month,
    MonthNotAvailable,
    available_months,
    parse_requested_month,
    today_utc,
)
from billing_app.formats import format_day, format_money
from billing_app.models import Organisation
from billing_app.reports.writer import sheet_names
from tests.factories import ALWAYS, add_tenant, make_organisation
from tests.pages import badges, parse, rows, summary_region
from tests.report_worker import download

PAGE = "/settings/usage"
SUMMARY = "/settings/usage/summary"
REPORT = "/settings/usage/report"
HTMX = {"HX-Request": "true"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JANUARY = Month(2026, 1)
ESCAPED_NAME = "Fabrikam <b>Inc</b>"


# --- Fixtures --------------------------------------------------------------------------------


@pytest.fixture
def today() -> dt.date:
    return today_utc()


@pytest.fixture
def current(today) -> Month:
    return Month.of(today)


@pytest.fixture
def tenants(app, organisation) -> Organisation:
    """Northwind's tenants: one paused in January 2026, one onboarded then and one offboarded
    then, whose users are billable from before 2026 on."""
    with app.app_context():
        northwind = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(
            northwind,
            "Contoso Ltd",
            pauses=(("2026-01-10", "2026-01-12"),),
            users=(
                ("Grace Hopper", ALWAYS),
                ("Alan Turing", (("2026-01-05", "2026-01-20"),)),
                ("Katherine Johnson", (("2026-01-01", None),)),
            ),
        )
        add_tenant(northwind, ESCAPED_NAME, onboarded_on="2026-01-12", users=(("Ada", ALWAYS),))
        add_tenant(
            northwind,
            "Tailspin Toys",
            offboarded_on="2026-01-25",
            users=(("Mary Jackson", ALWAYS), ("Dorothy Vaughan", ALWAYS)),
        )
        db.session.expunge_all()
    return organisation


def usage_of(app, month: Month, today: dt.date):
    with app.app_context():
        northwind = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        return month_usage(northwind, month, today)


def totals_of(app, today: dt.date):
    with app.app_context():
        northwind = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        return monthly_totals(northwind, today)


# --- Money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("1234.56", "usd", "$1,234.56"),
        ("1234.5", "eur", "€1,234.50"),
        ("0", "gbp", "£0.00"),
        ("1234567.8", "USD", "$1,234,567.80"),
        ("1234.56", "chf", "1,234.56 CHF"),
        ("3", "sek", "3.00 SEK"),
        ("2.9975", "usd", "$2.9975"),
        ("-12.5", "usd", "-$12.50"),
    ],
)
def test_money_is_shown_with_its_currency(amount, currency, shown):
    assert format_money(Decimal(amount), currency) == shown


# --- The month picker ------------------------------------------------------------------------


def test_picker_lists_the_months_since_january_2026_newest_first(auth, organisation, current):
    auth.as_role("full_member")
    page = parse(auth.client.get(PAGE).get_data(as_text=True))
    select_ = page.one("select", name="month")
    options = select_.all("option")
    expected = [str(month) for month in available_months(today_utc())]
    assert [option.attrs["value"] for option in options] == expected
    assert expected[0] == str(current) and expected[-1] == "2026-01"
    assert [o.attrs["value"] for o in options if "selected" in o.attrs] == [str(current)]
    assert options[0].text == f"{current.label} (month to date)"


def test_picker_is_a_get_form_that_htmx_enhances(auth, organisation):
    auth.as_role("billing")
    page = parse(auth.client.get(PAGE).get_data(as_text=True))
    select_ = page.one("select", name="month")
    [form] = [f for f in page.all("form") if select_ in f.all("select")]
    assert (form.attrs["method"], form.attrs["action"]) == ("get", PAGE)
    assert form.one("button").text == "Show"
    assert page.one("label", for_=select_.attrs["id"]).text == "Month"
    assert select_.attrs["hx-get"] == SUMMARY
    assert select_.attrs["hx-trigger"] == "change"
    assert select_.attrs["hx-target"] == "#usage-month"
    assert select_.attrs["hx-swap"] == "outerHTML"


def test_month_parameter_chooses_the_month(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(f"{PAGE}?month=2026-01")
    page = parse(response.get_data(as_text=True))
    assert response.status_code == 200
    selected = [o for o in page.one("select", name="month").all("option") if "selected" in o.attrs]
    assert [o.attrs["value"] for o in selected] == ["2026-01"]
    assert page.by_id("usage-month-heading").text == "January 2026"
    download = page.by_id("download-report")
    assert download.attrs["href"] == f"{REPORT}?month=2026-01"
    labels = [download.one("span", class_=state).text for state in ("when-idle", "when-busy")]
    assert labels == [
        "Download report for January 2026 (.xlsx)",
        "Preparing report for January 2026…",
    ]


def test_page_without_a_month_shows_the_current_one(auth, tenants, current):
    auth.as_role("admin")
    page = parse(auth.client.get(PAGE).get_data(as_text=True))
    assert page.by_id("usage-month-heading").text == current.label
    assert page.by_id("download-report").attrs["href"] == f"{REPORT}?month={current}"


def bad_months(today: dt.date) -> list[str]:
    return ["2025-12", str(Month.of(today).next()), "2026-13", "abc", "2026-1", "2026-01-01"]


def message_for(value: str) -> str:
    with pytest.raises(MonthNotAvailable) as refused:
        parse_requested_month(value, today_utc())
    return str(refused.value)


@pytest.mark.parametrize("value", bad_months(today_utc()))
def test_bad_month_on_the_page_is_a_400_with_the_message_in_the_summary(auth, tenants, value):
    auth.as_role("admin")
    response = auth.client.get(PAGE, query_string={"month": value})
    assert response.status_code == 400
    page = parse(response.get_data(as_text=True))
    assert page.one("h1").text == "Settings · Usage"
    problem = page.by_id("usage-month").one(id="usage-problem")
    assert problem.text == message_for(value)
    assert problem.attrs["role"] == "alert"
    assert page.by_id("usage-table") is None and page.by_id("download-report") is None
    selected = [o for o in page.one("select", name="month").all("option") if "selected" in o.attrs]
    # The picker names no month: the one on screen is none of them.
    assert [(o.attrs["value"], o.text) for o in selected] == [("", "Choose a month")]


@pytest.mark.parametrize("value", bad_months(today_utc()))
def test_bad_month_in_the_summary_is_a_400_fragment_with_the_message(auth, tenants, value):
    auth.as_role("full_member")
    response = auth.client.get(SUMMARY, query_string={"month": value}, headers=HTMX)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert html.startswith('<div id="usage-month"') and "<html" not in html
    assert summary_region(response).one(id="usage-problem").text == message_for(value)
    assert "HX-Push-Url" not in response.headers


@pytest.mark.parametrize("value", bad_months(today_utc()))
def test_bad_month_for_the_report_is_a_400_error_page(auth, tenants, value):
    auth.as_role("billing")
    response = auth.client.get(REPORT, query_string={"month": value})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    page = parse(response.get_data(as_text=True))
    assert page.one("div", role="alert").one("p").text == message_for(value)
    assert page.one("a", href=PAGE).text == "Back to Petra"


@pytest.mark.parametrize("path", [SUMMARY, REPORT])
def test_summary_and_report_ask_for_a_month(auth, organisation, path):
    auth.as_role("admin")
    response = auth.client.get(path, headers=HTMX)
    assert response.status_code == 400
    assert "Choose a month, written as YYYY-MM" in response.get_data(as_text=True)


# --- The summary -----------------------------------------------------------------------------


def test_htmx_summary_is_the_fragment_and_puts_the_page_address_in_the_history(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.startswith('<div id="usage-month"') and "<html" not in html
    assert "<select" not in html
    assert response.headers["HX-Push-Url"] == f"{PAGE}?month=2026-01"
    assert "HX-Request" in response.vary
    assert summary_region(response).by_id("usage-month-heading").text == "January 2026"


def test_summary_without_htmx_is_the_whole_page_for_that_month(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(f"{SUMMARY}?month=2026-01")
    page = parse(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "HX-Request" in response.vary and "HX-Push-Url" not in response.headers
    assert page.one("h1").text == "Settings · Usage"
    assert page.by_id("usage-month-heading").text == "January 2026"


def test_page_varies_on_hx_request(auth, organisation):
    auth.as_role("admin")
    assert "HX-Request" in auth.client.get(PAGE).vary


def test_page_and_fragment_show_the_same_summary(auth, tenants):
    auth.as_role("admin")
    fragment = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX).get_data(as_text=True)
    page = auth.client.get(f"{PAGE}?month=2026-01").get_data(as_text=True)
    assert fragment.strip() in page


@pytest.mark.parametrize("which", ["january", "current"])
def test_summary_figures_are_those_of_the_proration(app, auth, tenants, today, which):
    month = JANUARY if which == "january" else Month.of(today)
    usage = usage_of(app, month, today)
    auth.as_role("full_member")
    response = auth.client.get(SUMMARY, query_string={"month": str(month)}, headers=HTMX)
    table = summary_region(response).by_id("usage-table")

    assert table.one("caption").text.startswith(f"Usage by tenant, {month.label}")
    assert [th.attrs["scope"] for th in table.one("thead").all("th")] == ["col"] * 6
    body = rows(table, "tbody")
    assert len(body) == len(usage.tenants) > 0
    for row, tenant in zip(body, usage.tenants, strict=True):
        assert row[0].startswith(tenant.name)
        assert [row[3], row[5], row[1]] == [
            str(tenant.billable_users),
            f"{tenant.units:.4f}",
            format_money(tenant.cost, "usd"),
        ]
    [total] = rows(table, "tfoot")
    assert [total[0], total[3], total[5], total[1]] == [
        f"All {len(usage.tenants)} tenants",
        str(usage.billable_users),
        f"{usage.units:.4f}",
        format_money(usage.cost, "usd"),
    ]
    assert usage.cost == sum(t.cost for t in usage.tenants) > 0
    assert summary_region(response).by_id("unit-price").text == "$3.00"


def test_january_figures_by_hand(auth, tenants):
    auth.as_role("full_member")
    response = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
    body = rows(summary_region(response).by_id("usage-table"), "tbody")
    # Contoso, paused 10-11 Jan: Grace 29 days, Alan 5-19 Jan less the pause = 13, Katherine 29.
    # Fabrikam from 12 Jan: 20 days. Tailspin until 25 Jan: 24 days each.
    assert [[row[3], row[5], row[1]] for row in body] == [
        ["3", f"{Decimal(71) / 31:.4f}", "$6.88"],
        ["1", f"{Decimal(20) / 31:.4f}", "$1.94"],
        ["2", f"{Decimal(48) / 31:.4f}", "$4.64"],
    ]


def test_tenants_changed_during_the_month_carry_badges(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
    cells = summary_region(response).by_id("usage-table").one("tbody").all("th")
    assert {cell.one("a").text: badges(cell) for cell in cells} == {
        "Contoso Ltd": ["Paused 10 Jan 2026 \N{EN DASH} 11 Jan 2026"],
        ESCAPED_NAME: ["Onboarded 12 Jan 2026"],
        "Tailspin Toys": ["Offboarded 25 Jan 2026"],
    }
    onboarded = cells[1].one("time")
    assert onboarded.attrs["datetime"] == "2026-01-12"


def test_tenant_names_are_escaped(auth, tenants):
    auth.as_role("admin")
    html = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX).get_data(as_text=True)
    assert "Fabrikam &lt;b&gt;Inc&lt;/b&gt;" in html and "<b>Inc</b>" not in html


def test_the_current_month_is_labelled_month_to_date(auth, tenants, today, current):
    auth.as_role("admin")
    response = auth.client.get(SUMMARY, query_string={"month": str(current)}, headers=HTMX)
    region = summary_region(response)
    assert region.by_id("month-to-date").text == (
        f"Month to date: counted through {format_day(today)}. Later days are added as they pass."
    )
    assert region.by_id("usage-table").one("caption").text.endswith("(month to date)")
    if current != JANUARY:
        past = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
        assert summary_region(past).by_id("month-to-date") is None


def test_chart_has_a_bar_per_month_and_a_text_alternative(app, auth, tenants, today, current):
    totals = totals_of(app, today)
    auth.as_role("admin")
    response = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
    svg = summary_region(response).one("svg")

    title = svg.by_id(svg.attrs["aria-labelledby"])
    assert title.tag == "title"
    assert title.text == f"Monthly usage cost, January 2026 to {current.label}"
    assert svg.attrs["aria-describedby"] == svg.one("desc").attrs["id"]
    assert "The same figures are in the table" in svg.one("desc").text

    bars = [rect for rect in svg.all("rect") if "chart-bar" in rect.classes]
    assert len(bars) == len(totals) == len(available_months(today))
    assert "is-selected" in bars[0].classes
    assert [b for b in bars if "is-current" in b.classes] == [bars[-1]]
    heights = [int(bar.attrs["height"]) for bar in bars]
    assert max(heights) > 0
    ordered = sorted(range(len(totals)), key=lambda i: totals[i][1])
    assert [heights[i] for i in ordered] == sorted(heights)

    alternative = summary_region(response).by_id("usage-chart-data")
    assert "visually-hidden" in alternative.classes
    assert [row[:2] for row in rows(alternative, "tbody")] == [
        [month.label + (" (month to date)" if month == current else ""), format_money(t, "usd")]
        for month, t in totals
    ]


def test_empty_organisation_has_a_friendly_empty_state(auth, organisation, current):
    auth.as_role("admin")
    response = auth.client.get(SUMMARY, query_string={"month": str(current)}, headers=HTMX)
    region = summary_region(response)
    assert response.status_code == 200
    assert region.by_id("usage-empty").text == f"No usage recorded for {current.label}."
    assert region.by_id("usage-table") is None
    assert region.by_id("download-report") is None
    assert region.all("svg") == []


def test_a_month_without_a_price_is_explained(app, auth, tenants):
    february = Month(2026, 2)
    with app.app_context():
        northwind = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        northwind.prices[0].from_month = february.first_day
        db.session.commit()
    auth.as_role("admin")
    message = "There is no unit price for January 2026 in your organisation's price list"

    summary = auth.client.get(f"{SUMMARY}?month=2026-01", headers=HTMX)
    assert summary.status_code == 200
    assert summary_region(summary).one(id="usage-problem").text.startswith(message)

    report = auth.client.get(f"{REPORT}?month=2026-01")
    assert report.status_code == 409
    assert message in report.get_data(as_text=True).replace("&#39;", "'")
    assert "Content-Disposition" not in report.headers

    shown = auth.client.get(SUMMARY, query_string={"month": str(february)}, headers=HTMX)
    assert summary_region(shown).by_id("usage-table") is not None


@pytest.mark.parametrize("role", ["admin", "full_member", "billing"])
def test_members_who_may_download_see_the_download_link(auth, tenants, role):
    auth.as_role(role)
    page = parse(auth.client.get(f"{PAGE}?month=2026-01").get_data(as_text=True))
    assert page.by_id("download-report").attrs["href"] == f"{REPORT}?month=2026-01"


# --- The report ------------------------------------------------------------------------------


def test_report_is_the_xlsx_of_the_month(app, auth, tenants, today, report_worker, billing_log):
    usage = usage_of(app, JANUARY, today)
    auth.as_role("billing")
    response = download(auth.client, f"{REPORT}?month=2026-01")
    body = response.get_data()
    response.close()

    assert response.status_code == 200
    assert response.mimetype == XLSX
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=usage-northwind-msp-2026-01.xlsx"
    )
    assert response.headers["Cache-Control"] == "no-store"
    workbook = openpyxl.load_workbook(io.BytesIO(body), data_only=True)
    summary = workbook["Summary"]
    assert summary["B2"].value == "Northwind Msp"
    assert summary["B3"].value == "January 2026"
    [total] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    assert Decimal(str(total[3])) == usage.cost
    assert total[1] == usage.billable_users
    assert workbook.sheetnames == ["Summary", *sheet_names(t.name for t in usage.tenants)]
    assert report_worker.temporary_files_left() == []

    [line] = billing_log.lines
    assert line["message"].startswith("usage report downloaded")
    assert (line["organisation"], line["month"]) == ("northwind-msp", "2026-01")
    assert isinstance(line["member_id"], int)


def test_report_of_the_current_month_counts_to_date(
    app, auth, tenants, today, current, report_worker
):
    usage = usage_of(app, current, today)
    auth.as_role("admin")
    response = download(auth.client, REPORT, query_string={"month": str(current)})
    body = response.get_data()
    response.close()
    assert response.headers["Content-Disposition"].endswith(f"usage-northwind-msp-{current}.xlsx")
    summary = openpyxl.load_workbook(io.BytesIO(body), data_only=True)["Summary"]
    assert summary["B3"].value == current.label
    assert "month to date" in summary["B4"].value
    [total] = [row for row in summary.iter_rows(values_only=True) if row[0] == "Total"]
    assert Decimal(str(total[3])) == usage.cost
    assert report_worker.temporary_files_left() == []


def test_report_of_an_empty_organisation_is_still_a_workbook(
    app, auth, organisation, report_worker
):
    auth.as_role("admin")
    response = download(auth.client, f"{REPORT}?month=2026-01")
    body = response.get_data()
    response.close()
    assert response.status_code == 200
    summary = openpyxl.load_workbook(io.BytesIO(body), data_only=True)["Summary"]
    assert summary["A9"].value == "No tenants were onboarded in January 2026."
    assert report_worker.temporary_files_left() == []


def test_report_is_of_the_members_own_organisation(app, auth, tenants, report_worker):
    with app.app_context():
        other = make_organisation("other-msp")
        add_tenant(other, "Other Tenant", users=(("Someone", ALWAYS),))
    auth.as_role("admin", slug="other-msp")
    response = download(auth.client, f"{REPORT}?month=2026-01")
    body = response.get_data()
    response.close()
    assert response.headers["Content-Disposition"].endswith("usage-other-msp-2026-01.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(body)).sheetnames == ["Summary", "Other Tenant"]
