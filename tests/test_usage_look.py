"""Issue 18, the look of the Usage and tenant pages as served: column headers that say what
changed, prorated units explained in words on the page and written to four places, one date
format, the portal button's words for each way in, a refused month that the picker does not
contradict, and an unknown tenant's own page with a way back."""

from __future__ import annotations

import re

import pytest

from billing_app.extensions import db
from billing_app.models import Organisation
from tests import rebilling
from tests.factories import update_organisation
from tests.pages import parse

PAGE = "/settings/usage"
MONTHS = "January|February|March|April|June|July|August|September|October|November|December"
LONG_DATE = re.compile(rf"(?<![\d,.$])\b\d{{1,2}} ({MONTHS}) \d{{4}}\b")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
UNITS = re.compile(r"^\d[\d,]*\.\d{4}$")


@pytest.fixture
def tenants(app, organisation) -> dict[str, str]:
    """The proration fixtures of tests/rebilling.py in Northwind: each tenant's external id."""
    with app.app_context():
        org = db.session.get(Organisation, organisation.id)
        return {key: t.external_id for key, t in rebilling.build(org).items()}


def visible_text(node) -> str:
    """The text a person sees: without what is only for screen readers."""
    hidden = {id(n) for n in node.all(class_="visually-hidden")}

    def walk(n) -> str:
        if id(n) in hidden:
            return ""
        return "".join(c if isinstance(c, str) else walk(c) for c in n.children)

    return " ".join(walk(node).split())


def test_the_tenant_tables_headers_say_which_change_they_show(auth, tenants):
    auth.as_role("admin")
    page = parse(auth.client.get(PAGE, query_string={"month": "2026-05"}).text)
    headers = [visible_text(th) for th in page.by_id("usage-table").one("thead").all("th")]
    assert [h.replace("↕", "").replace("↑", "").strip() for h in headers] == [
        "Tenant",
        "Cost",
        "Cost change",
        "Users",
        "Users change",
        "Prorated units *",
    ]


def test_prorated_units_are_explained_in_words_on_the_page_and_have_four_places(auth, tenants):
    auth.as_role("admin")
    page = parse(auth.client.get(PAGE, query_string={"month": "2026-05"}).text)
    table = page.by_id("usage-table")
    assert table.all("abbr") == []
    units_header = table.one("thead").all("th")[-1]
    note = page.by_id(units_header.attrs["aria-describedby"])
    assert "billable days divided by the days in the month" in note.text
    assert "visually-hidden" not in note.classes and note.tag == "p"
    units = [row.all("td")[-1].text for row in table.one("tbody").all("tr")]
    units.append(table.one("tfoot").all("td")[-1].text)
    assert units and all(UNITS.match(u) for u in units), units


def test_one_date_format_and_four_places_of_units_on_the_tenant_page(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(
        f"{PAGE}/tenants/{tenants['contoso']}", query_string={"month": "2026-04"}
    )
    page = parse(response.text)
    text = visible_text(page.one("main"))
    assert ISO_DATE.findall(text) == []
    assert LONG_DATE.search(text) is None, LONG_DATE.search(text)
    users = page.by_id("tenant-users-table")
    first = users.one("tbody").all("tr")[0].all("td")
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} 2026", first[1].text), first[1].text
    assert UNITS.match(page.by_id("tenant-units").text)
    assert UNITS.match(users.one("tfoot").all("td")[1].text)
    # The events above the table write their days the same way.
    assert "Paused from 28 Mar 2026 through 4 Apr 2026" in " ".join(
        page.by_id("tenant-events").text.split()
    )


def test_one_date_format_on_the_usage_page(auth, tenants):
    auth.as_role("admin")
    page = parse(auth.client.get(PAGE, query_string={"month": "2026-02"}).text)
    text = visible_text(page.one("main"))
    assert ISO_DATE.findall(text) == []
    found = LONG_DATE.search(text)
    assert found is None, text[found.start() - 60 : found.end()]
    assert "Onboarded 10 Feb 2026" in text


@pytest.mark.parametrize(
    ("role", "whitelisted", "label", "flow"),
    [
        ("admin", False, "Email a portal login link", "magic_link"),
        ("admin", True, "Open Billing Portal", "direct"),
        ("billing", False, "Open Billing Portal", "direct"),
    ],
)
def test_the_portal_button_says_which_way_in(
    app, auth, organisation, role, whitelisted, label, flow
):
    update_organisation(app, portal_direct_access=whitelisted)
    auth.as_role(role)
    page = parse(auth.client.get(PAGE).text)
    button = page.by_id("portal-button")
    assert visible_text(button) == label
    explanation = page.by_id(button.attrs["aria-describedby"])
    assert explanation.attrs["data-flow"] == flow
    # Said beside the button, not folded away.
    assert explanation in page.by_id("portal").one("form").all("p")
    if flow == "magic_link":
        assert "emails a one-time login link to the billing email" in explanation.text
        assert "not to you" in explanation.text
    else:
        assert "in a new tab" in explanation.text


def test_a_month_not_available_leaves_the_picker_empty_and_links_to_the_latest(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(PAGE, query_string={"month": "2099-01"})
    assert response.status_code == 400
    page = parse(response.text)
    options = page.one("select", name="month").all("option")
    selected = [o for o in options if "selected" in o.attrs]
    assert [(o.text, o.attrs["value"]) for o in selected] == [("Choose a month", "")]
    assert "disabled" in selected[0].attrs
    latest = page.by_id("usage-latest")
    assert latest.attrs["href"] == PAGE
    assert latest.text.endswith(", the latest month")


def test_a_tenants_month_not_available_leaves_its_picker_empty(auth, tenants):
    auth.as_role("admin")
    url = f"{PAGE}/tenants/{tenants['contoso']}"
    response = auth.client.get(url, query_string={"month": "nonsense"})
    assert response.status_code == 400
    page = parse(response.text)
    selected = [o for o in page.one("select").all("option") if "selected" in o.attrs]
    assert [o.text for o in selected] == ["Choose a month"]
    assert page.by_id("tenant-latest").attrs["href"] == url


def test_an_unknown_tenant_has_its_own_page_with_a_way_back(auth, tenants):
    auth.as_role("admin")
    response = auth.client.get(f"{PAGE}/tenants/no-such-tenant")
    assert response.status_code == 404
    page = parse(response.text)
    assert page.one("h1").text == "Tenant not found"
    assert "no-such-tenant" in page.by_id("tenant-not-found").text
    assert page.by_id("back-to-usage").attrs["href"] == PAGE
    assert page.by_id("search-tenants").attrs["href"] == f"{PAGE}?q=no-such-tenant"
    # The same page for another organisation's tenant: nothing says it exists elsewhere.
    assert auth.client.get(f"{PAGE}/tenants/{tenants['contoso']}x").status_code == 404
