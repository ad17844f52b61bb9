"""The tenant page: one tenant's month from the one calculator, equal to its row in the month
summary and its sheet in the report; its pauses, users added and removed, month picker,
paging, and the same 404 for another organisation's tenant as for an unknown one."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl
import pytest
from sqlalchemy import event, select

from billing_app.extensions import db
from billing_app.figures.calculator import month_usage
from billing_app.figures.months import Month, available_months, today_utc
from billing_app.formats import format_money
from billing_app.models import BillablePeriod, Identity, Organisation
from billing_app.tenants import service
from tests import rebilling
from tests.factories import ALWAYS, add_tenant, d, make_organisation
from tests.pages import badges, parse, rows, without_csrf_tokens
from tests.report_worker import download

HTMX = {"HX-Request": "true"}


@pytest.fixture
def tenants(app, organisation) -> dict[str, dict]:
    """The proration fixtures of tests/rebilling.py in Northwind: each tenant's ids."""
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        built = rebilling.build(org)
        return {
            key: {"id": t.id, "external_id": t.external_id, "name": t.name}
            for key, t in built.items()
        }


def page_of(auth, external_id: str, month: Month | str | None = None, headers=None, **params):
    query = {"month": str(month)} if month is not None else {}
    return auth.client.get(
        f"/settings/usage/tenants/{external_id}", query_string=query | params, headers=headers
    )


def tenant_total(html: str) -> str:
    return parse(html).by_id("tenant-total").text


def summary_cost(html: str, external_id: str) -> str | None:
    """The cost in the Usage page's row of the tenant (found by its link)."""
    table = parse(html).by_id("usage-table")
    for row in table.one("tbody").all("tr"):
        links = row.all("a")
        if links and f"/tenants/{external_id}?" in links[0].attrs["href"]:
            return row.all("td")[0].text
    return None


def report_costs(content: bytes) -> dict[str, Decimal]:
    """Each tenant sheet's total cost, by the tenant name written in it."""
    workbook = openpyxl.load_workbook(io.BytesIO(content), data_only=True)
    costs = {}
    for sheet in workbook.worksheets[1:]:
        name = sheet["B1"].value
        totals = [row for row in sheet.iter_rows(values_only=True) if row[0] == "Total"]
        costs[name] = Decimal(str(round(totals[0][8], 2))) if totals else Decimal("0.00")
    return costs


def test_total_equals_the_summary_row_and_the_report_sheet_every_month(
    app, auth, tenants, report_worker
):
    auth.as_role("full_member")
    compared = 0
    for month in available_months(today_utc()):
        summary = auth.client.get("/settings/usage", query_string={"month": str(month)})
        report = download(auth.client, "/settings/usage/report", query_string={"month": str(month)})
        assert summary.status_code == report.status_code == 200
        sheets = report_costs(report.data)
        with app.app_context():
            org = db.session.scalar(select(Organisation))
            usage = month_usage(org, month, today_utc())
        for tenant in usage.tenants:
            response = page_of(auth, tenant.external_id, month)
            assert response.status_code == 200
            html = response.get_data(as_text=True)
            expected = format_money(tenant.cost, usage.currency)
            if tenant.lines:
                assert tenant_total(html) == expected
            else:
                assert parse(html).by_id("tenant-no-users") is not None
            assert parse(html).by_id("tenant-cost").text == expected
            assert summary_cost(summary.get_data(as_text=True), tenant.external_id) == expected
            assert sheets[tenant.name] == tenant.cost
            compared += 1
    assert compared >= 30


def test_the_page_shows_the_tenant_its_pauses_and_its_users(auth, tenants):
    auth.as_role("billing")
    contoso = tenants["contoso"]
    html = page_of(auth, contoso["external_id"], "2026-04").get_data(as_text=True)
    tree = parse(html)
    assert tree.one("h1").text == "Contoso Ltd"
    assert "00000000-0000-0000-0000-" in tree.by_id("tenant-facts").text
    assert "Onboarded 1 Dec 2025" in tree.by_id("tenant-facts").text
    assert "Not offboarded" in tree.by_id("tenant-facts").text
    events = tree.by_id("tenant-events").text
    # The pause from 28 March to 5 April touches April; the one in August does not.
    assert "Paused from 28 Mar 2026 through 4 Apr 2026 ; billed again from 5 Apr" in events
    assert "August" not in events
    table = tree.by_id("tenant-users-table")
    assert [c.text for c in table.one("thead").all("th")] == [
        "Display name",
        "User principal name",
        "Billable from",
        "Billable to",
        "Billable days",
        "Prorated units",
        "Prorated cost",
    ]
    body = {row[0]: row for row in rows(table, "tbody")}
    # April: 30 days, paused 1-4; 3.00 a month.
    assert body["Grace Hopper"] == [
        "Grace Hopper", "grace.hopper@example.com", "5 Apr 2026", "30 Apr 2026", "26",
        "0.8667", "$2.60",
    ]  # fmt: skip
    assert body["Ada Lovelace"][2:] == ["16 Apr 2026", "30 Apr 2026", "15", "0.5000", "$1.50"]
    assert body["Alan Turing"][2:5] == ["5 Apr 2026", "30 Apr 2026", "26"]
    assert "Back Again" not in body
    [total] = rows(table, "tfoot")
    assert total[0] == f"Total, {len(body)} users"
    link = tree.by_id("tenant-users-csv")
    assert link.attrs["href"] == (
        f"/settings/usage/export/users.csv?month=2026-04&tenant={contoso['external_id']}"
    )
    back = tree.by_id("back-to-usage-month")
    assert back.attrs["href"] == "/settings/usage?month=2026-04"


def test_users_added_and_removed_against_the_month_before(auth, tenants):
    auth.as_role("admin")
    contoso = tenants["contoso"]
    tree = parse(page_of(auth, contoso["external_id"], "2026-06").get_data(as_text=True))
    added, removed = tree.by_id("tenant-added"), tree.by_id("tenant-removed")
    # Back Again returns on 10 June; Alan Turing's last day was 10 May.
    assert "Added since May 2026: 1" in added.one("h3").text
    assert [li.text for li in added.all("li")] == ["Back Again back.again@example.com"]
    assert "Removed since May 2026: 1" in removed.one("h3").text
    assert [li.text for li in removed.all("li")] == ["Alan Turing alan.turing@example.com"]

    tree = parse(page_of(auth, contoso["external_id"], "2026-01").get_data(as_text=True))
    assert tree.by_id("tenant-added") is None
    assert "nothing to compare" in tree.by_id("tenant-no-comparison").text


def test_onboarding_offboarding_and_not_onboarded_months(auth, tenants):
    auth.as_role("admin")
    awkward = tenants["awkward"]
    october = parse(page_of(auth, awkward["external_id"], "2026-10").get_data(as_text=True))
    assert "Offboarded on 15 Oct 2026" in october.by_id("tenant-events").text
    february = parse(page_of(auth, awkward["external_id"], "2026-02").get_data(as_text=True))
    assert "Onboarded on 10 Feb 2026" in february.by_id("tenant-events").text
    # Every user was billable in October and none is in November: all removed.
    november = parse(page_of(auth, awkward["external_id"], "2026-11").get_data(as_text=True))
    not_billed = november.by_id("tenant-not-onboarded").text
    assert "was offboarded on 15 Oct 2026" in not_billed
    assert "not onboarded" not in not_billed
    # No users in the month: no CSV of them is offered.
    assert november.by_id("tenant-users-csv") is None
    assert october.by_id("tenant-users-csv") is not None
    assert "Removed since October 2026: 3" in november.by_id("tenant-removed").text
    formula = tenants["formula"]
    open_pause = parse(page_of(auth, formula["external_id"], "2026-11").get_data(as_text=True))
    events = open_pause.by_id("tenant-events").text
    assert "Paused from 25 Nov 2026" in events and "until further notice" in events


def test_customer_text_is_escaped(auth, tenants):
    auth.as_role("admin")
    html = page_of(auth, tenants["formula"]["external_id"], "2026-08").get_data(as_text=True)
    assert (
        '<h1 class="tenant-name">=HYPERLINK(&#34;https://evil.example&#34;,&#34;x&#34;)</h1>'
        in html
    )


def test_another_organisations_tenant_and_an_unknown_one_are_the_same_404(app, auth, tenants):
    with app.app_context():
        other = make_organisation("other-msp")
        theirs = add_tenant(other, "Theirs", users=(("Someone", ALWAYS),)).external_id
    auth.as_role("admin")
    elsewhere = page_of(auth, theirs, "2026-04")
    unknown = page_of(auth, "t-does-not-exist", "2026-04")
    assert elsewhere.status_code == unknown.status_code == 404
    # The same page but for the id asked for: nothing says the tenant exists elsewhere.
    assert without_csrf_tokens(elsewhere).replace(theirs, "ID") == without_csrf_tokens(
        unknown
    ).replace("t-does-not-exist", "ID")
    assert "Someone" not in elsewhere.get_data(as_text=True)
    assert page_of(auth, theirs, "2026-04", headers=HTMX).status_code == 404


def test_month_picker_for_htmx_and_without(auth, tenants):
    auth.as_role("full_member")
    contoso = tenants["contoso"]["external_id"]
    whole = page_of(auth, contoso, "2026-03")
    assert "<html" in whole.get_data(as_text=True)
    picker = parse(whole.get_data(as_text=True)).by_id("tenant-month-picker")
    assert picker.attrs["hx-get"] == f"/settings/usage/tenants/{contoso}"
    assert picker.attrs["hx-target"] == "#tenant-month"
    selected = [o for o in picker.all("option") if "selected" in o.attrs]
    assert [o.attrs["value"] for o in selected] == ["2026-03"]
    form = parse(whole.get_data(as_text=True)).one("form", class_="month-picker")
    assert (form.attrs["method"], form.attrs["action"]) == (
        "get",
        f"/settings/usage/tenants/{contoso}",
    )

    fragment = auth.client.get(
        f"/settings/usage/tenants/{contoso}", query_string={"month": "2026-05"}, headers=HTMX
    )
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in html and html.lstrip().startswith('<div id="tenant-month"')
    assert parse(html).one("h2").text == "May 2026"
    assert "HX-Request" in fragment.headers["Vary"]
    assert "HX-Request" in whole.headers["Vary"]
    # Without a month: the current one.
    current = page_of(auth, contoso)
    assert parse(current.get_data(as_text=True)).by_id("tenant-month-heading").text == (
        today_utc().strftime("%B %Y")
    )


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("2025-12", "Usage is available from January 2026"),
        ("2099-01", "has not started yet"),
        ("march", "is not a month"),
        ("", "Choose a month"),
    ],
)
def test_months_outside_the_available_ones_are_400(auth, tenants, month, message):
    auth.as_role("admin")
    response = page_of(auth, tenants["contoso"]["external_id"], month)
    assert response.status_code == 400
    assert message in parse(response.get_data(as_text=True)).by_id("tenant-problem").text
    fragment = page_of(auth, tenants["contoso"]["external_id"], month, headers=HTMX)
    assert fragment.status_code == 400 and "<html" not in fragment.get_data(as_text=True)


def test_a_month_without_price_says_so(app, auth, organisation):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        org.prices[0].from_month = Month(2026, 3).first_day
        db.session.commit()
        external_id = add_tenant(org, "Contoso", users=(("Grace", ALWAYS),)).external_id
    auth.as_role("admin")
    response = page_of(auth, external_id, "2026-02")
    assert response.status_code == 200
    assert "no unit price for February 2026" in response.get_data(as_text=True)
    march = parse(page_of(auth, external_id, "2026-03").get_data(as_text=True))
    assert "February 2026 has no unit price" in march.by_id("tenant-no-comparison").text


def test_a_large_tenant_is_paged(app, auth, organisation):
    users = 2 * service.PAGE_SIZE + 5
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        big = add_tenant(
            org, "Big", users=tuple((f"User {n:04d}", ALWAYS) for n in range(users))
        ).external_id
    auth.as_role("admin")
    first = parse(page_of(auth, big, "2026-04").get_data(as_text=True))
    table = first.by_id("tenant-users-table")
    assert len(rows(table, "tbody")) == service.PAGE_SIZE
    assert f"1\u2013100 of {users}" in first.by_id("tenant-users-caption").text
    [total] = rows(table, "tfoot")
    assert total[0] == f"Total, {users} users"
    assert total[-1] == format_money(Decimal("3.00") * users, "usd")
    pager = first.by_id("tenant-pager")
    assert "Page 1 of 3" in pager.text and f"All {users} users are in the CSV" in pager.text
    [next_link] = pager.all("a")
    assert next_link.attrs["href"] == f"/settings/usage/tenants/{big}?month=2026-04&page=2"
    last = parse(page_of(auth, big, "2026-04", page="3").get_data(as_text=True))
    body = rows(last.by_id("tenant-users-table"), "tbody")
    assert [row[0] for row in body] == [f"User {n:04d}" for n in range(200, users)]
    assert page_of(auth, big, "2026-04", page="x").status_code == 200
    beyond = parse(page_of(auth, big, "2026-04", page="99").get_data(as_text=True))
    assert "Page 3 of 3" in beyond.by_id("tenant-pager").text


def test_set_based_queries_for_one_tenant(app, auth, organisation):
    """The page reads one tenant's rows: as many statements with 1 tenant as with 40, and
    every usage query is cut to the tenant."""
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        mine = add_tenant(org, "Mine", users=(("Grace", ALWAYS), ("Alan", ALWAYS))).external_id
    auth.as_role("admin")
    page_of(auth, mine, "2026-04")  # signs in fully, warms what is kept per process

    def statements() -> list[str]:
        seen: list[str] = []
        with app.app_context():
            engine = db.engine
        app.extensions.pop("kept_fragments", None)  # computed, not the kept page
        listener = lambda _c, _cur, statement, *_a: seen.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert page_of(auth, mine, "2026-04").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return seen

    few = statements()
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        for n in range(40):
            add_tenant(org, f"Other {n}", users=tuple((f"U{n}-{k}", ALWAYS) for k in range(5)))
    many = statements()
    assert len(few) == len(many) <= 14
    usage_queries = [s for s in many if "billable_periods" in s or "tenant_pauses" in s]
    assert usage_queries and all("tenants.id = " in s or "tenant_id = " in s for s in usage_queries)


def test_a_kept_month_follows_the_usage_revision(app, auth, organisation):
    """Each process keeps the months it showed, until the usage data changes."""
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        tenant = add_tenant(org, "Mine", users=(("Grace", ALWAYS),))
        external_id, tenant_id = tenant.external_id, tenant.id
    auth.as_role("admin")

    def users() -> str:
        html = page_of(auth, external_id, "2026-04").get_data(as_text=True)
        return parse(html).by_id("tenant-users").text

    assert users() == "1"
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        identity = Identity(
            organisation_id=org.id,
            tenant_id=tenant_id,
            external_id="u-new",
            display_name="Alan",
            user_principal_name="alan@example.com",
        )
        identity.billable_periods.append(BillablePeriod(from_date=d("2026-01-01"), until_date=None))
        db.session.add(identity)
        org.bump_usage_revision()
        db.session.commit()
    assert users() == "2"
    fragment = page_of(auth, external_id, "2026-04", headers=HTMX).get_data(as_text=True)
    assert parse(fragment).by_id("tenant-users").text == "2"


def test_a_tenant_id_with_every_allowed_character_is_linked_and_reachable(app, auth, organisation):
    with app.app_context():
        tenant = add_tenant(db.session.get(Organisation, organisation.id), "Odd Ids Ltd")
        tenant.external_id = "EU:contoso@t~1.x_y-z"
        db.session.commit()
    auth.as_role("admin")
    html = auth.client.get("/settings/usage", query_string={"q": "Odd Ids"}).get_data(as_text=True)
    [link] = [a for a in parse(html).by_id("usage-table").all("a") if a.text == "Odd Ids Ltd"]
    href = link.attrs["href"]
    assert href.startswith("/settings/usage/tenants/EU:contoso@t~1.x_y-z?")
    page = auth.client.get(href)
    assert page.status_code == 200
    assert parse(page.get_data(as_text=True)).one("h1").text == "Odd Ids Ltd"


def test_a_paused_tenants_users_are_paused_not_removed_and_its_badge_has_dates(
    app, auth, organisation
):
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        holloway = add_tenant(
            org,
            "Holloway Ltd",
            pauses=(("2026-06-01", None),),
            users=(("Grace Hopper", ALWAYS), ("Ada Lovelace", ALWAYS)),
        ).external_id
        add_tenant(
            org, "Brief Pause Ltd", pauses=(("2026-06-03", "2026-06-10"),), users=(("Bob", ALWAYS),)
        )
    auth.as_role("admin")
    tree = parse(page_of(auth, holloway, "2026-06").get_data(as_text=True))
    removed = tree.by_id("tenant-removed")
    assert removed.one("h3").text == "Paused since 1 Jun 2026: 2"
    assert "paused, not removed" in tree.by_id("tenant-paused-users").text
    assert "Removed since" not in removed.text
    # Still paused all of July: the heading still says paused.
    july = parse(page_of(auth, holloway, "2026-07").get_data(as_text=True))
    assert july.by_id("tenant-removed").one("h3").text.startswith("Paused since 1 Jun 2026")

    table = parse(
        auth.client.get("/settings/usage", query_string={"month": "2026-06"}).get_data(as_text=True)
    ).by_id("usage-table")
    found = {cell.one("a").text: badges(cell) for cell in table.one("tbody").all("th")}
    assert found["Holloway Ltd"] == ["Paused from 1 Jun 2026"]
    assert found["Brief Pause Ltd"] == ["Paused 3 Jun 2026 \N{EN DASH} 9 Jun 2026"]
