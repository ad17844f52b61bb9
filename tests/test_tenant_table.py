# ruff: noqa: RUF001, RUF003 - the table writes en dashes, minus signs and guillemets
"""The Usage page's tenant table: search by name or Microsoft tenant id, each sort, pages of
50 with the total of all tenants on every page, the change against the month before, and
bad parameters, as plain GETs and as htmx swaps of the table alone."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.figures.calculator import month_totals
from billing_app.figures.months import Month, today_utc
from billing_app.formats import format_money
from billing_app.importer import import_file
from billing_app.models import Organisation, Tenant
from billing_app.usage.tenant_table import (
    PAGE_SIZE,
    SEARCH_MAX,
    BadTableQuery,
    Sort,
    TableQuery,
    read_query,
)
from dev.sample_data import organisation_data
from tests.factories import ALWAYS, add_tenant
from tests.pages import badges, parse, rows

PAGE = "/settings/usage"
SUMMARY = "/settings/usage/summary"
HTMX = {"HX-Request": "true"}
TABLE_SWAP = {"HX-Request": "true", "HX-Target": "tenant-table"}
FEBRUARY = "2026-02"
BIG_SLUG = "tenant-table-msp"


# --- Fixtures --------------------------------------------------------------------------------


@pytest.fixture
def february(app, organisation) -> Organisation:
    """Northwind's tenants across January and February 2026, at $3.00 a user:

    - Contoso Ltd: Grace all along; Alan from 5 January until 15 February.
    - Fabrikam: onboarded 10 February, Ada all along.
    - Tailspin Toys: offboarded 15 February, Mary all along.
    - Wingtip Toys: paused 1 to 7 February, Bob all along.
    """
    with app.app_context():
        northwind = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        add_tenant(
            northwind,
            "Contoso Ltd",
            users=(("Grace Hopper", ALWAYS), ("Alan Turing", (("2026-01-05", "2026-02-15"),))),
        )
        add_tenant(northwind, "Fabrikam", onboarded_on="2026-02-10", users=(("Ada", ALWAYS),))
        add_tenant(
            northwind, "Tailspin Toys", offboarded_on="2026-02-15", users=(("Mary", ALWAYS),)
        )
        add_tenant(
            northwind,
            "Wingtip Toys",
            pauses=(("2026-02-01", "2026-02-08"),),
            users=(("Bob", ALWAYS),),
        )
        db.session.expunge_all()
    return organisation


@pytest.fixture
def many(app, auth):
    """An organisation of 120 generated tenants (three pages), its admin signed in."""
    with app.app_context():
        import_file(organisation_data(slug=BIG_SLUG, tenants=120, identities_per_tenant=2, seed=7))
    auth.login(f"admin@{BIG_SLUG}.example", "demo-admin")
    return auth


def totals_of(app, slug: str, month: Month):
    with app.app_context():
        organisation = db.session.scalar(select(Organisation).filter_by(slug=slug))
        return month_totals(organisation, month, today_utc())


def microsoft_ids(app, slug: str) -> list[tuple[str, str]]:
    with app.app_context():
        statement = (
            select(Tenant.name, Tenant.microsoft_tenant_id)
            .join(Organisation)
            .where(Organisation.slug == slug)
        )
        return sorted((name, ms_id) for name, ms_id in db.session.execute(statement))


def table_of(response):
    assert response.status_code < 500
    section = parse(response.get_data(as_text=True)).by_id("tenant-table")
    assert section is not None
    return section


def names(section) -> list[str]:
    return [row.one("span", class_="tenant-name").text for row in section.one("tbody").all("tr")]


def total_row(section) -> list[str]:
    [total] = rows(section.by_id("usage-table"), "tfoot")
    return total


def latest_month() -> Month:
    return Month.of(today_utc())


# --- Reading the parameters ------------------------------------------------------------------


def test_query_defaults_and_round_trip():
    assert read_query({}) == TableQuery("", Sort.NAME, 1)
    query = read_query({"q": "  Contoso   Ltd ", "sort": "-cost", "page": "3"})
    assert query == TableQuery("Contoso Ltd", Sort.COST_DESC, 3)
    assert query.params() == {"q": "Contoso Ltd", "sort": "-cost", "page": "3"}
    assert read_query(query.params()) == query
    # A new search or order starts again at page 1; a page keeps the search and order.
    assert query.params(sort=Sort.USERS) == {"q": "Contoso Ltd", "sort": "users"}
    assert query.params(search="") == {"sort": "-cost"}
    assert query.params(page=2) == {"q": "Contoso Ltd", "sort": "-cost", "page": "2"}
    assert TableQuery().params() == {}


def test_a_header_click_sorts_by_its_column_then_turns_the_order_round():
    by_name = TableQuery()
    assert by_name.sort_by("name") is Sort.NAME_DESC
    assert by_name.sort_by("cost") is Sort.COST_DESC
    assert by_name.sort_by("users") is Sort.USERS_DESC
    assert TableQuery(sort=Sort.COST_DESC).sort_by("cost") is Sort.COST
    assert TableQuery(sort=Sort.COST).sort_by("cost") is Sort.COST_DESC
    assert TableQuery(sort=Sort.NAME_DESC).sort_by("name") is Sort.NAME


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sort": "price"}, "cannot be sorted by “price”"),
        ({"sort": "x" * 500}, "cannot be sorted by “xxxxxxxxxxxxxxxxxxxx…”"),
        ({"page": "two"}, "“two” is not a page number"),
        ({"page": "0"}, "Pages are numbered from 1."),
        ({"page": "-1"}, "is not a page number"),
        ({"page": "٣"}, "is not a page number"),
        ({"page": "9" * 400}, "is not a page number"),
        ({"q": "a" * (SEARCH_MAX + 1)}, f"at most {SEARCH_MAX} characters"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(args, message):
    with pytest.raises(BadTableQuery, match=re.escape(message)):
        read_query(args)


# --- Search ----------------------------------------------------------------------------------


def test_search_by_part_of_the_name_ignores_case(app, many):
    everyone = totals_of(app, BIG_SLUG, latest_month())
    expected = [t.name for t in everyone.tenants if "contoso" in t.name.casefold()]
    assert len(expected) >= 2
    section = table_of(many.client.get(PAGE, query_string={"q": "cONTOSO"}))
    assert names(section) == expected
    status = section.by_id("tenant-table-status").text
    assert status == f"{len(expected)} tenants match “cONTOSO”"
    assert section.by_id("tenant-search").attrs["value"] == "cONTOSO"


@pytest.mark.parametrize("typed", ["exact", "upper", "part", "without dashes", "braces"])
def test_search_by_microsoft_tenant_id(app, many, typed):
    tenant_name, ms_id = microsoft_ids(app, BIG_SLUG)[42]
    search = {
        "exact": ms_id,
        "upper": ms_id.upper(),
        "part": ms_id[9:23],
        "without dashes": ms_id.replace("-", ""),
        "braces": "{" + ms_id + "}",
    }[typed]
    section = table_of(many.client.get(PAGE, query_string={"q": search}))
    assert names(section) == [tenant_name]
    assert section.one("tbody").one("span", class_="tenant-id").text == ms_id
    assert section.by_id("tenant-table-status").text == f"1 tenant matches “{search}”"


def test_a_search_without_matches_says_so_and_keeps_the_total_of_all(app, many):
    everyone = totals_of(app, BIG_SLUG, latest_month())
    section = table_of(many.client.get(PAGE, query_string={"q": "no such tenant <b>"}))
    assert section.by_id("tenant-table-status").text == "0 tenants match “no such tenant <b>”"
    empty = section.by_id("tenant-table-empty")
    assert "No tenant's name or Microsoft tenant id contains “no such tenant <b>”" in empty.text
    assert empty.one("a").attrs["href"] == f"{PAGE}?month={latest_month()}"
    count = len(everyone.tenants)
    total = total_row(section)
    assert [total[0], total[3]] == [f"All {count} tenants", f"{everyone.billable_users:,}"]
    assert total[1] == format_money(everyone.cost, "usd")
    assert section.by_id("pager") is None and not section.all("nav")


def test_search_text_is_escaped(app, many):
    html = many.client.get(PAGE, query_string={"q": '"><script>alert(1)</script>'}).get_data(
        as_text=True
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Sort ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", list(Sort))
def test_each_sort(app, many, sort):
    tenants = list(totals_of(app, BIG_SLUG, latest_month()).tenants)  # by name
    if sort.column == "name":
        expected = tenants[::-1] if sort.descending else tenants
    else:
        field = "billable_users" if sort.column == "users" else "cost"
        expected = sorted(tenants, key=lambda t: getattr(t, field), reverse=sort.descending)
    section = table_of(many.client.get(PAGE, query_string={"sort": sort.value}))
    assert names(section) == [t.name for t in expected[:PAGE_SIZE]]
    # The sorted column says so; its header link turns the order round.
    headers = section.one("thead").all("th")
    column = {"name": 0, "cost": 1, "users": 3}[sort.column]
    assert headers[column].attrs["aria-sort"] == ("descending" if sort.descending else "ascending")
    assert [h for h in headers if "aria-sort" in h.attrs] == [headers[column]]
    link = headers[column].one("a")
    reverse = TableQuery(sort=sort).sort_by(sort.column)
    suffix = "" if reverse is Sort.NAME else f"&sort={reverse.value}"
    assert link.attrs["href"] == f"{PAGE}?month={latest_month()}{suffix}"
    assert link.attrs["hx-get"] == f"{SUMMARY}?month={latest_month()}{suffix}"


def test_sort_keeps_the_search_and_the_search_keeps_the_sort(app, many):
    section = table_of(many.client.get(PAGE, query_string={"q": "contoso", "sort": "-cost"}))
    cost_link = section.one("thead").all("th")[1].one("a")
    assert cost_link.attrs["href"] == f"{PAGE}?month={latest_month()}&q=contoso&sort=cost"
    form = section.one("form")
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.all("input", type="hidden")}
    assert hidden == {"month": str(latest_month()), "sort": "-cost"}
    assert form.attrs["method"] == "get" and form.attrs["action"] == PAGE


# --- Pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "first"), [(1, 0), (2, 50), (3, 100)])
def test_pages_of_fifty_with_the_total_of_all_tenants_on_each(app, many, page, first):
    everyone = totals_of(app, BIG_SLUG, latest_month())
    tenants = len(everyone.tenants)
    assert 100 < tenants <= 150  # three pages, the last one short
    count = min(PAGE_SIZE, tenants - first)
    section = table_of(many.client.get(PAGE, query_string={"page": page, "sort": "-users"}))
    expected = sorted(everyone.tenants, key=lambda t: t.billable_users, reverse=True)
    assert names(section) == [t.name for t in expected[first : first + count]]
    assert section.by_id("tenant-table-status").text == (
        f"Showing {first + 1}–{first + count} of {tenants} tenants"
    )
    total = total_row(section)
    assert [total[0], total[1], total[3], total[5]] == [
        f"All {tenants} tenants",
        format_money(everyone.cost, "usd"),
        f"{everyone.billable_users:,}",
        f"{everyone.units:,.4f}",
    ]
    pager = section.one("nav")
    assert pager.attrs["aria-label"] == "Tenant pages"
    assert pager.one("span", class_="pager-at").text == f"Page {page} of 3"
    links = {a.text.strip("«‹›» "): a.attrs["href"] for a in pager.all("a")}
    base = f"{PAGE}?month={latest_month()}&sort=-users"
    if page == 1:
        assert links == {"Next": f"{base}&page=2", "Last": f"{base}&page=3"}
    elif page == 2:
        assert links == {
            "First": base,
            "Previous": base,
            "Next": f"{base}&page=3",
            "Last": f"{base}&page=3",
        }
    else:
        assert links == {"First": base, "Previous": f"{base}&page=2"}


def test_a_page_past_the_last_is_a_400_that_offers_the_last_page(app, many):
    response = many.client.get(PAGE, query_string={"page": 4, "q": "a", "sort": "cost"})
    assert response.status_code == 400
    section = table_of(response)
    problem = section.by_id("tenant-table-problem")
    assert problem.attrs["role"] == "alert"
    assert re.fullmatch(r"There is no page 4: the \d+ matches fit on \d pages?\. .*", problem.text)
    last = problem.all("a")[0]
    assert last.text == "Go to the last page"
    expected = rf"{PAGE}\?month={latest_month()}&q=a&sort=cost(&page=\d)?"
    assert re.fullmatch(expected, last.attrs["href"])
    # The total of all tenants is still there.
    tenants = len(totals_of(app, BIG_SLUG, latest_month()).tenants)
    assert total_row(section)[0] == f"All {tenants} tenants"
    everyone = many.client.get(PAGE, query_string={"page": 4})
    message = f"There is no page 4: the {tenants} tenants fit on 3 pages."
    assert message in everyone.get_data(as_text=True)


@pytest.mark.parametrize(
    "args",
    [
        {"sort": "price"},
        {"page": "0"},
        {"page": "abc"},
        {"page": "99999999999999999999999"},
        {"q": "x" * 10_000},
        {"sort": "<script>"},
    ],
)
@pytest.mark.parametrize("where", ["page", "summary", "htmx", "table"])
def test_bad_parameters_get_a_400_with_the_reason_never_a_500(many, args, where):
    path = PAGE if where == "page" else SUMMARY
    headers = {"htmx": HTMX, "table": TABLE_SWAP}.get(where, {})
    month = str(latest_month())
    response = many.client.get(path, query_string={"month": month, **args}, headers=headers)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    problem = parse(html).by_id("tenant-table-problem")
    assert problem is not None and problem.text
    assert "<script>" not in html.split('id="tenant-table"')[1]
    assert "HX-Push-Url" not in response.headers
    assert ("<html" in html) is (where in ("page", "summary"))


# --- The month before ------------------------------------------------------------------------


def test_changes_against_the_month_before_are_those_of_the_proration(auth, february):
    auth.as_role("full_member")
    section = table_of(auth.client.get(PAGE, query_string={"month": FEBRUARY}))
    body = {row[0].split(" ")[0]: row[1:] for row in rows(section.by_id("usage-table"), "tbody")}
    # February has 28 days. Contoso: Grace $3.00, Alan 1-14 Feb $1.50 (January: Grace $3.00,
    # Alan 5-31 Jan = 27/31 × $3 = $2.61). Fabrikam from 10 Feb: 19/28 × $3 = $2.04, new.
    # Tailspin until 15 Feb: 14/28 = $1.50 against $3.00. Wingtip paused 1-7 Feb: 21/28 = $2.25.
    assert body == {
        "Contoso": ["$4.50", "−$1.11", "2", "0", f"{Decimal(28 + 14) / 28:.4f}"],
        "Fabrikam": ["$2.04", "+$2.04", "1", "+1", f"{Decimal(19) / 28:.4f}"],
        "Tailspin": ["$1.50", "−$1.50", "1", "0", f"{Decimal(14) / 28:.4f}"],
        "Wingtip": ["$2.25", "−$0.75", "1", "0", f"{Decimal(21) / 28:.4f}"],
    }
    total = total_row(section)
    # Against $11.61 and 4 users in January.
    assert total[:5] == ["All 4 tenants", "$10.29", "−$1.32", "5", "+1"]
    assert "Changes are against January 2026." in section.text
    # The change cells' headers say what they compare, for screen readers.
    headers = [th.text for th in section.one("thead").all("th")]
    assert headers[2] == "Cost change since January 2026"
    assert headers[4] == "Users change since January 2026"


def test_january_2026_has_no_month_before(auth, february):
    auth.as_role("admin")
    section = table_of(auth.client.get(PAGE, query_string={"month": "2026-01"}))
    for row in rows(section.by_id("usage-table"), "tbody"):
        assert row[2] == row[4] == "— no month before"
    assert "Changes are against" not in section.text


def test_badges_mark_onboarded_paused_and_offboarded(auth, february):
    auth.as_role("admin")
    section = table_of(auth.client.get(PAGE, query_string={"month": FEBRUARY}))
    cells = section.one("tbody").all("th")
    assert {cell.one("a").text: badges(cell) for cell in cells} == {
        "Contoso Ltd": [],
        "Fabrikam": ["Onboarded 10 Feb 2026"],
        "Tailspin Toys": ["Offboarded 15 Feb 2026"],
        "Wingtip Toys": ["Paused 1 Feb 2026 – 7 Feb 2026"],
    }


# --- Links, htmx and the page ----------------------------------------------------------------


def test_each_row_links_to_its_tenant_page_for_the_month(app, auth, february):
    auth.as_role("billing")
    section = table_of(auth.client.get(PAGE, query_string={"month": FEBRUARY}))
    links = [a.attrs["href"] for a in section.one("tbody").all("a")]
    with app.app_context():
        ids = db.session.scalars(select(Tenant.external_id).order_by(Tenant.name)).all()
    assert links == [f"/settings/usage/tenants/{i}?month={FEBRUARY}" for i in ids]
    shown = auth.client.get(links[1])
    assert shown.status_code == 200
    assert "Fabrikam" in shown.get_data(as_text=True)


def test_the_tenant_page_of_an_unknown_tenant_is_404(auth, february):
    auth.as_role("admin")
    assert auth.client.get("/settings/usage/tenants/t-nobody?month=2026-02").status_code == 404


def test_another_organisations_tenant_is_404(app, many, february):
    with app.app_context():
        northwind_tenant = db.session.scalar(
            select(Tenant.external_id).join(Organisation).filter_by(slug="northwind-msp")
        )
        own = db.session.scalar(
            select(Tenant.external_id).join(Organisation).filter_by(slug=BIG_SLUG)
        )
    # Generated and hand-made ids may coincide; ask for one only Northwind has.
    assert northwind_tenant != own
    response = many.client.get(f"/settings/usage/tenants/{northwind_tenant}")
    assert response.status_code == 404


def test_htmx_swapping_the_table_gets_the_table_alone_and_the_page_address(many):
    month = str(latest_month())
    args = {"month": month, "q": "contoso", "sort": "-cost", "page": "1"}
    response = many.client.get(SUMMARY, query_string=args, headers=TABLE_SWAP)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="tenant-table"')
    assert "usage-month" not in html and "<html" not in html
    assert response.headers["HX-Push-Url"] == f"{PAGE}?month={month}&q=contoso&sort=-cost"
    assert {"HX-Request", "HX-Target"} <= set(response.vary)
    section = table_of(response)
    assert section.attrs["hx-target"] == "this" and section.attrs["hx-swap"] == "outerHTML"
    assert section.attrs["hx-sync"] == "this:replace" and "data-busy-region" in section.attrs


def test_the_month_fragment_carries_the_table_it_was_asked_for(app, many):
    tenants = len(totals_of(app, BIG_SLUG, latest_month()).tenants)
    month = str(latest_month())
    args = {"month": month, "sort": "users", "page": "2"}
    response = many.client.get(SUMMARY, query_string=args, headers=HTMX)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="usage-month"')
    assert response.headers["HX-Push-Url"] == f"{PAGE}?month={month}&sort=users&page=2"
    status = table_of(response).by_id("tenant-table-status").text
    assert status == f"Showing 51–100 of {tenants} tenants"


def test_without_javascript_the_summary_route_is_the_whole_page_with_that_table(app, many):
    tenants = len(totals_of(app, BIG_SLUG, latest_month()).tenants)
    month = str(latest_month())
    plain = many.client.get(SUMMARY, query_string={"month": month, "page": "3"})
    page = many.client.get(PAGE, query_string={"month": month, "page": "3"})
    assert "<html" in plain.get_data(as_text=True)
    for response in (plain, page):
        status = table_of(response).by_id("tenant-table-status").text
        assert status == f"Showing 101–{tenants} of {tenants} tenants"
    # Every control of the table is a real link or a GET form to the page.
    section = table_of(page)
    for link in section.all("a"):
        if "hx-get" in link.attrs:
            assert link.attrs["href"].startswith(f"{PAGE}?")
            assert link.attrs["hx-get"].startswith(f"{SUMMARY}?")


def test_the_first_page_by_name_is_the_page_and_the_fragment_alike(many):
    month = str(latest_month())
    fragment = many.client.get(SUMMARY, query_string={"month": month}, headers=HTMX)
    page = many.client.get(PAGE, query_string={"month": month})
    assert fragment.get_data(as_text=True).strip() in page.get_data(as_text=True)


def test_a_thousand_tenants_stay_under_200_kb(app, auth):
    slug = "thousand-msp"
    with app.app_context():
        import_file(organisation_data(slug=slug, tenants=1000, identities_per_tenant=1, seed=3))
    auth.login(f"admin@{slug}.example", "demo-admin")
    month = str(latest_month())
    tenants = len(totals_of(app, slug, latest_month()).tenants)
    assert tenants > 900  # the rest were offboarded before this month
    last_page = -(-tenants // PAGE_SIZE)
    for path, query, headers in [
        (PAGE, {}, {}),
        (PAGE, {"month": month, "sort": "-cost", "page": str(last_page)}, {}),
        (SUMMARY, {"month": month}, HTMX),
        (SUMMARY, {"month": month, "q": "a"}, TABLE_SWAP),
    ]:
        response = auth.client.get(path, query_string=query, headers=headers)
        assert response.status_code == 200
        assert len(response.get_data()) < 200_000, (path, query, len(response.get_data()))
        section = table_of(response)
        assert len(section.one("tbody").all("tr")) <= PAGE_SIZE
        assert total_row(section)[0] == f"All {tenants:,} tenants"
    last = table_of(auth.client.get(PAGE, query_string={"page": str(last_page)}))
    first = (last_page - 1) * PAGE_SIZE + 1
    assert last.by_id("tenant-table-status").text == (
        f"Showing {first:,}–{tenants:,} of {tenants:,} tenants"
    )


def test_the_table_keeps_its_figures_when_the_month_has_none_before_priced(app, auth, february):
    """A month whose month before has no price compares with nothing rather than failing."""
    auth.as_role("admin")
    with app.app_context():
        from billing_app.models import Price

        price = db.session.scalar(select(Price))
        price.from_month = dt.date(2026, 2, 1)
        organisation = db.session.scalar(select(Organisation).filter_by(slug="northwind-msp"))
        organisation.bump_usage_revision()
        db.session.commit()
    section = table_of(auth.client.get(PAGE, query_string={"month": FEBRUARY}))
    assert total_row(section)[1] == "$10.29"
    assert total_row(section)[2] == "— no month before"


def test_current_month_changes_compare_the_projection_like_the_headline(app, auth, organisation):
    from billing_app.figures.cache import month_headline

    today = today_utc()
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        add_tenant(org, "Steady Ltd", users=(("Grace", ALWAYS), ("Ada", ALWAYS)))
        add_tenant(org, "Leaving Ltd", users=(("Alan", (("2025-12-01", None),)),))
        headline = month_headline(org, Month.of(today), today)
    auth.as_role("admin")
    section = table_of(auth.client.get(PAGE))
    body = {row[0].split(" ")[0]: row[1:] for row in rows(section.by_id("usage-table"), "tbody")}
    # Billable every day of both months: projected to the month's end the cost is the month
    # before's, not the fall of a month counted only so far.
    assert body["Steady"][1] == "$0.00" and body["Steady"][3] == "0"
    total = total_row(section)
    change = headline.change.amount
    sign = "+" if change > 0 else "−" if change < 0 else ""
    assert total[2] == sign + format_money(abs(change), "usd")
    headers = [th.text for th in section.one("thead").all("th")]
    assert headers[2].endswith("(projected)") and headers[4].endswith("(projected)")
    assert "projected month-end figures" in section.by_id("tenant-table-change-basis").text
