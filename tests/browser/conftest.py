"""Browser fixtures: Debian's Chromium driven by Playwright against the app served on 127.0.0.1
(`live_server`, from tests/conftest.py).

htmx is loaded from its CDN address with its SRI hash; the browser is answered with the
same file from the npm package of the pinned version, so Chromium itself checks the hash.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from billing_app import config
from billing_app.extensions import db
from tests.conftest import BACKENDS

HTMX_FILE = Path(__file__).parent / "assets" / f"htmx-{config.HTMX_VERSION}.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With PostgreSQL as well as SQLite, browser tests run once, on PostgreSQL: the pages
    Chromium is shown do not depend on the database, whose routes are tested on both."""
    if "postgresql" not in BACKENDS:
        return
    here = Path(__file__).parent
    once, twice = [], []
    for item in items:
        on_sqlite = getattr(item, "callspec", None) and item.callspec.params.get("database_url")
        in_browser = here in Path(item.path).parents
        (twice if in_browser and on_sqlite == "sqlite" else once).append(item)
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = once


# Generous waits: the suite shares two cores with the app, the Stripe server and Chromium.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def _serve_htmx(route) -> None:
    route.fulfill(
        status=200,
        body=HTMX_FILE.read_bytes(),
        headers={
            "content-type": "application/javascript; charset=utf-8",
            "access-control-allow-origin": "*",
        },
    )


@pytest.fixture
def context(browser: Browser, live_server) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    context.route(config.HTMX_URL, _serve_htmx)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.console_messages = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console_messages.append(message))  # type: ignore[attr-defined]
    return page


def sign_in(page: Page, email: str, password: str, *, settled: bool = True) -> None:
    """Sign in through the login form, as a person would; unless not `settled`, wait for the
    invoices section (where the member sees it, with JavaScript) to load, since it may put a
    banner of what is owed at the top of the page and move everything below it while a test
    clicks."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    # Wait for the page signing in leads to, scripts included, before the test acts on it.
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name="Sign in").click()
    # Without JavaScript the section waits for a click, and nothing moves.
    if settled and page.evaluate("typeof window.htmx") == "object":
        page.locator('#invoices-list[aria-busy="true"]').wait_for(state="detached")


# --- Accessibility checks with the vendored axe-core ---------------------------------------

AXE_VERSION = "4.14.1"
AXE_FILE = Path(__file__).parent / "assets" / f"axe-core-{AXE_VERSION}.min.js"
# From the package's own sri-history.json.
AXE_INTEGRITY = "sha256-KTSJmUUM3yhJqOcLeRL8LahahJ2jnA0NU5T1HUqe2Vw="
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
BLOCKING = ("serious", "critical")


def axe_violations(page: Page, allowed: tuple[str, ...] = ()) -> list[str]:
    """Serious and critical axe violations on the page as it is now, one line per element;
    rules in `allowed` are not reported (each caller says why)."""
    page.wait_for_load_state("load")
    assert page.evaluate("typeof window.axe") == "object", "axe-core did not load"
    assert page.evaluate("window.axe.version") == AXE_VERSION
    result = page.evaluate(
        "async (tags) => await window.axe.run(document, "
        "{runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    assert result["testEngine"]["version"] == AXE_VERSION
    assert result["passes"] or result["incomplete"] or result["inapplicable"]
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']} — {violation['help']}"
        for violation in result["violations"]
        if violation["impact"] in BLOCKING and violation["id"] not in allowed
        for node in violation["nodes"]
    ]


@pytest.fixture
def checked_page(page: Page) -> Page:
    """A page with axe-core added to every document it loads (for `axe_violations`)."""
    page.add_init_script(AXE_FILE.read_text(encoding="utf-8"))
    return page


# --- Answers held back ----------------------------------------------------------------------


class Held:
    """Requests to a path, held back until released."""

    def __init__(self, page: Page, pattern: str) -> None:
        self.routes: list[Route] = []
        self.page, self.pattern = page, pattern
        page.route(pattern, lambda route: self.routes.append(route))

    def wait_for(self, count: int) -> None:
        for _ in range(100):
            if len(self.routes) >= count:
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"{len(self.routes)} requests to {self.pattern}, not {count}")

    def release(self) -> None:
        self.page.unroute(self.pattern)
        for route in self.routes:
            with contextlib.suppress(Exception):  # one replaced by a newer request is gone
                route.continue_()
        self.routes.clear()


@contextlib.contextmanager
def reads_held(app) -> Iterator[None]:
    """While open, the server's reads of usage wait: the database itself holds the answer back
    (an exclusive lock on SQLite, table locks on PostgreSQL: of the prices and usage changes
    every month's answer starts from, and of the tenants and users)."""
    with app.app_context():
        connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if connection.dbapi_connection.__class__.__module__.startswith("sqlite3"):
            cursor.execute("BEGIN EXCLUSIVE")
        else:
            cursor.execute(
                "LOCK TABLE prices, usage_changes, tenants, identities IN ACCESS EXCLUSIVE MODE"
            )
        yield
    finally:
        connection.rollback()
        connection.close()


# --- Layout ----------------------------------------------------------------------------------

OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const wider = [];
  for (const element of document.querySelectorAll('body *')) {
    const box = element.getBoundingClientRect();
    const parent = element.parentElement.getBoundingClientRect();
    if (box.right > width + 0.5 && parent.right <= width + 0.5) {
      const name = `${element.tagName.toLowerCase()}#${element.id}`;
      const classes = element.getAttribute('class') || '';
      wider.push(`${name}.${classes} reaches ${Math.round(box.right)} px`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, wider};
}"""


def sideways_scroll(page: Page) -> list[str]:
    """Why the page scrolls sideways, if it does: its scroll width against the window's, and
    the outermost elements reaching past the window's right edge (none when it fits)."""
    page.wait_for_load_state("load")
    found = page.evaluate(OVERFLOWING)
    if found["scrollWidth"] <= found["innerWidth"]:
        return []
    return [f"page is {found['scrollWidth']} px wide in {found['innerWidth']} px", *found["wider"]]


FOCUSED = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  return {
    tag: element.tagName.toLowerCase(),
    name: (element.getAttribute('aria-label') || element.innerText || element.value || '').trim(),
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    shadow: style.boxShadow !== 'none',
    visible: element.getBoundingClientRect().width > 0 && element.getBoundingClientRect().left >= 0,
  };
}"""
