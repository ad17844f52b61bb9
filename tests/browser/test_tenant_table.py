# ruff: noqa: RUF001 - the table writes en dashes
"""The tenant table in Chromium: search, sort and pages swap the table in place with htmx and
put the page's address in the address bar, work the same without JavaScript, mark the table
busy while they load, and never make a 360 px page scroll sideways."""

from __future__ import annotations

import contextlib
import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing_app import config
from billing_app.extensions import db
from billing_app.figures.calculator import month_totals
from billing_app.figures.months import Month, today_utc
from billing_app.importer import import_file
from billing_app.models import Organisation
from dev.sample_data import organisation_data
from tests.browser.conftest import AXE_FILE, axe_violations, sign_in
from tests.browser.conftest import _serve_htmx as serve_htmx

pytestmark = pytest.mark.browser

SLUG = "table-browser-msp"
OUTSIDE_THE_SCREEN = """section => {
  const bounds = section.getBoundingClientRect();
  const right = Math.min(window.innerWidth, bounds.right) + 0.5;
  const left = Math.max(0, bounds.left) - 0.5;
  return [section, ...section.querySelectorAll('*')]
    .filter(e => !e.closest('.table-scroll') || e.matches('.table-scroll'))
    .filter(e => !e.closest('.visually-hidden') && e.getClientRects().length > 0)
    .filter(e => e.getBoundingClientRect().right > right || e.getBoundingClientRect().left < left)
    .map(e => e.tagName + '.' + e.className);
}"""


@pytest.fixture
def tenants(app, organisation):
    """An organisation of 120 generated tenants (three pages); its tenants by name."""
    with app.app_context():
        import_file(organisation_data(slug=SLUG, tenants=120, identities_per_tenant=2, seed=11))
        org = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        return month_totals(org, Month.of(today_utc()), today_utc()).tenants


def sign_in_admin(page: Page) -> None:
    sign_in(page, f"admin@{SLUG}.example", "demo-admin")
    expect(page.locator("#tenant-table")).to_be_visible()


def tenant_names(page: Page) -> list[str]:
    return page.locator("#usage-table tbody .tenant-name").all_inner_texts()


def test_search_sort_and_pages_swap_the_table_and_the_address(page, live_server, tenants):
    sign_in_admin(page)
    page.evaluate("window.stillTheSamePage = true")
    month = str(Month.of(today_utc()))
    expect(page.locator("#tenant-table-status")).to_have_text(
        f"Showing 1–50 of {len(tenants)} tenants"
    )
    total = page.locator("#usage-table tfoot th")
    expect(total).to_have_text(f"All {len(tenants)} tenants")

    # Search.
    contoso = [t.name for t in tenants if "contoso" in t.name.casefold()]
    page.get_by_label("Search by name or Microsoft tenant id").fill("contoso")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{live_server.url}/settings/usage?month={month}&q=contoso")
    expect(page.locator("#tenant-table-status")).to_have_text(
        f"{len(contoso)} tenants match “contoso”"
    )
    assert tenant_names(page) == contoso
    expect(total).to_have_text(f"All {len(tenants)} tenants")
    # The search box keeps the focus and what was typed.
    expect(page.get_by_label("Search by name or Microsoft tenant id")).to_have_value("contoso")

    # Sort by cost, highest first, then turn the order round.
    page.get_by_role("link", name=re.compile("^Cost")).click()
    expect(page).to_have_url(re.compile(r"q=contoso&sort=-cost$"))
    cost_header = page.locator("#usage-table thead th").nth(1)
    expect(cost_header).to_have_attribute("aria-sort", "descending")
    by_cost = sorted((t for t in tenants if "contoso" in t.name.casefold()), key=lambda t: -t.cost)
    assert tenant_names(page) == [t.name for t in by_cost]
    page.get_by_role("link", name=re.compile("^Cost")).click()
    expect(cost_header).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"q=contoso&sort=cost$"))

    # Clear the search: all tenants again, still by cost; then page on.
    page.get_by_role("link", name="Clear search").click()
    expect(page).to_have_url(f"{live_server.url}/settings/usage?month={month}&sort=cost")
    pager = page.get_by_role("navigation", name="Tenant pages")
    pager.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"sort=cost&page=2$"))
    expect(page.locator("#tenant-table-status")).to_have_text(
        f"Showing 51–100 of {len(tenants)} tenants"
    )
    by_cost = sorted(tenants, key=lambda t: t.cost)
    assert tenant_names(page) == [t.name for t in by_cost[50:100]]
    pager.get_by_role("link", name="Last").click()
    expect(page).to_have_url(re.compile(r"page=3$"))
    expect(pager.get_by_text("Page 3 of 3")).to_be_visible()
    assert tenant_names(page) == [t.name for t in by_cost[100:]]
    expect(total).to_have_text(f"All {len(tenants)} tenants")

    assert page.evaluate("window.stillTheSamePage") is True
    # The address bar's address shows the same table as a fresh load.
    shown = tenant_names(page)
    page.reload()
    assert tenant_names(page) == shown


def test_the_table_is_busy_while_a_search_sort_or_page_loads(page, tenants):
    sign_in_admin(page)
    held = []
    page.route("**/settings/usage/summary?*", lambda route: held.append(route))
    section = page.locator("#tenant-table")
    expect(section).not_to_have_attribute("aria-busy", "true")

    page.get_by_role("navigation", name="Tenant pages").get_by_role("link", name="Next").click()
    expect(section).to_have_attribute("aria-busy", "true")
    page.wait_for_function("() => true")  # let the held request settle in
    assert len(held) == 1
    # A second request while the first is held replaces it; the table stays busy.
    page.locator("#usage-table").get_by_role("link", name=re.compile("^Users")).click()
    expect(section).to_have_attribute("aria-busy", "true")
    page.wait_for_timeout(200)
    assert len(held) == 2
    for route in held:
        # The replaced request was aborted by the page; continuing it may fail.
        with contextlib.suppress(Exception):
            route.continue_()
    expect(page).to_have_url(re.compile(r"sort=-users$"))
    expect(section).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#usage-table thead th").nth(3)).to_have_attribute(
        "aria-sort", "descending"
    )


def test_without_javascript_search_sort_and_pages_are_plain_links_and_forms(
    browser, live_server, tenants
):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in_admin(page)
        page.get_by_label("Search by name or Microsoft tenant id").fill("contoso")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"/settings/usage\?month=\d{4}-\d{2}&q=contoso$"))
        assert tenant_names(page) == [t.name for t in tenants if "contoso" in t.name.casefold()]
        page.locator("#usage-table").get_by_role("link", name=re.compile("^Users")).click()
        expect(page).to_have_url(re.compile(r"q=contoso&sort=-users$"))
        page.get_by_role("link", name="Clear search").click()
        page.get_by_role("navigation", name="Tenant pages").get_by_role("link", name="Last").click()
        expect(page).to_have_url(re.compile(r"sort=-users&page=3$"))
        expect(page.locator("#tenant-table-status")).to_contain_text("Showing 101–")
    finally:
        context.close()


@pytest.mark.parametrize("query", ["", "?page=2", "?q=contoso", "?q=nothing-like-it", "?page=9"])
def test_at_360_px_only_the_table_scrolls_sideways(browser, live_server, tenants, query):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 360, "height": 800})
    page = context.new_page()
    try:
        sign_in_admin(page)
        page.goto(f"/settings/usage{query}")
        expect(page.locator("#tenant-table")).to_be_visible()
        # Nothing of the table's section reaches past the screen or out of the section, but
        # the table inside its box.
        escaping = page.locator("#tenant-table").evaluate(OUTSIDE_THE_SCREEN)
        assert escaping == []
        box = page.locator("#tenant-table .table-scroll")
        # The wide table scrolls inside its own box, which the keyboard can reach.
        assert box.evaluate("b => b.scrollWidth > b.clientWidth")
        assert box.get_attribute("tabindex") == "0"
    finally:
        context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_every_state_of_the_table_is_axe_clean(browser, live_server, tenants, width):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": width, "height": 844}
    )
    context.route(config.HTMX_URL, serve_htmx)
    page = context.new_page()
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    try:
        sign_in_admin(page)
        for query in ["", "?q=contoso", "?q=nothing-like-it", "?sort=-cost", "?page=2", "?page=9"]:
            page.goto(f"/settings/usage{query}")
            expect(page.locator("#tenant-table")).to_be_visible()
            assert axe_violations(page) == [], query
    finally:
        context.close()
