"""The report as LibreOffice prints it: converted headless to PDF and read back with poppler.

`make test` installs LibreOffice Calc and poppler-utils from Debian when they are missing.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from billing_app.figures.calculator import MonthUsage, TenantUsage, UserLine
from billing_app.figures.months import Month
from billing_app.figures.proration import prorated_cost
from billing_app.reports.writer import write_report

SEPTEMBER = Month(2026, 9)
GENERATED_AT = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
LONG_NAMES = (
    "Contoso Professional Services Group International — North America Region",
    "Harrow, Finch, Whitlock & Partners LLP — Commercial Litigation Department",
    "Brightsmile Family & Cosmetic Dentistry of Greater Springfield",
    "Kessler Precision Machining and Industrial Automation GmbH & Co. KG",
    "Saint Aidan's Church of England Voluntary Aided Primary School",
)
TENANT_SHEET_MARK = "Microsoft tenant ID"
"""Printed at the top of every tenant sheet and nowhere on the Summary."""


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _line(number: int, price: Decimal, days: int, first_day: int = 1) -> UserLine:
    return UserLine(
        identity_id=number,
        external_id=f"u-{number}",
        display_name=f"Bartholomew Featherstonehaugh-Worthington {number}",
        user_principal_name=f"bartholomew.worthington{number}@example.com",
        billable_from=SEPTEMBER.first_day + dt.timedelta(days=first_day - 1),
        billable_to=SEPTEMBER.first_day + dt.timedelta(days=first_day + days - 2),
        billable_days=days,
        days_in_month=SEPTEMBER.days,
        units=Decimal(days) / SEPTEMBER.days,
        unit_price=price,
        cost=prorated_cost(price, days, SEPTEMBER.days),
        tenant_id=number // 10_000,
        month=SEPTEMBER,
    )


def _tenant(number: int, name: str, users: int, price: Decimal) -> TenantUsage:
    lines = tuple(
        _line(number * 10_000 + i, price, 30 if i % 3 else 29, 1 if i % 3 else 2)
        for i in range(users)
    )
    eventful = number % 4 == 0
    return TenantUsage(
        tenant_id=number,
        external_id=f"t-{number}",
        name=name,
        microsoft_tenant_id=f"{number:08d}-0000-4000-8000-000000000000",
        onboarded_on=d("2026-09-02") if eventful else d("2025-11-17"),
        offboarded_on=d("2026-09-30") if eventful else None,
        onboarded_in_month=eventful,
        offboarded_in_month=eventful,
        paused_in_month=eventful,
        pauses_in_month=((d("2026-09-10"), d("2026-09-12")),) if eventful else (),
        lines=lines,
        billable_users=users,
        billable_days=sum(line.billable_days for line in lines),
        units=sum((line.units for line in lines), Decimal(0)).quantize(Decimal("0.0001")),
        cost=sum((line.cost for line in lines), Decimal(0)),
    )


def _usage(tenants: int, users: int, price: str, currency: str) -> MonthUsage:
    """September 2026 (the longest month name) with long tenant and user names, every note a
    tenant can have, and amounts in the tens of millions."""
    unit_price = Decimal(price)
    rows = tuple(
        _tenant(
            i, f"{LONG_NAMES[i % len(LONG_NAMES)]} ({i + 1})", users if i else users * 8, unit_price
        )
        for i in range(tenants)
    )
    return MonthUsage(
        organisation_id=1,
        organisation_slug="print-msp",
        organisation_name="Northwind Managed Services & Cloud Security International",
        month=SEPTEMBER,
        today=d("2026-12-31"),
        month_to_date=False,
        counted_end=d("2026-10-01"),
        days_in_month=SEPTEMBER.days,
        unit_price=unit_price,
        currency=currency,
        tenants=rows,
        billable_users=sum(t.billable_users for t in rows),
        billable_days=sum(t.billable_days for t in rows),
        units=sum((t.units for t in rows), Decimal(0)),
        cost=sum((t.cost for t in rows), Decimal(0)),
    )


@dataclass(frozen=True)
class PrintedReport:
    pages: list[str]
    """Each page's text, as pdftotext lays it out."""
    sizes: list[tuple[float, float]]
    """Each page's width and height in points."""

    @property
    def summary_pages(self) -> list[str]:
        first_tenant = next(i for i, page in enumerate(self.pages) if TENANT_SHEET_MARK in page)
        return self.pages[:first_tenant]

    def tenant_sheet_pages(self, name: str) -> list[str]:
        """The pages of the tenant sheet of the tenant `name`."""
        start = next(
            i for i, page in enumerate(self.pages) if TENANT_SHEET_MARK in page and name in page
        )
        pages = [self.pages[start]]
        for page in self.pages[start + 1 :]:
            if TENANT_SHEET_MARK in page:
                break
            pages.append(page)
        return pages


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs it (LibreOffice Calc, poppler-utils)"
    return path


def print_report(usage: MonthUsage, directory: Path) -> PrintedReport:
    """Write the report of `usage`, convert it to PDF with LibreOffice, read the PDF back."""
    organisation = SimpleNamespace(name=usage.organisation_name, slug=usage.organisation_slug)
    workbook = directory / "report.xlsx"
    write_report(usage, organisation, GENERATED_AT, workbook, tenants=usage.tenants)
    profile = directory / "libreoffice-profile"
    subprocess.run(
        [
            _tool("soffice"),
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(directory),
            str(workbook),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    pdf = directory / "report.pdf"
    info = subprocess.run(
        [_tool("pdfinfo"), "-f", "1", "-l", "100000", str(pdf)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    sizes = [
        (float(width), float(height))
        for width, height in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)
    ]
    text = subprocess.run(
        [_tool("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = text.split("\f")
    if pages and not pages[-1].strip():
        pages.pop()
    assert len(pages) == len(sizes) > 0
    return PrintedReport(pages=pages, sizes=sizes)


@pytest.fixture(scope="module", params=["usd", "chf"])
def seventeen_tenants(request, tmp_path_factory) -> tuple[MonthUsage, PrintedReport]:
    """A 17-tenant month priced at 98,765.4321 a user: the first tenant has 120 users, the
    others 15, and the totals run into the tens of millions."""
    usage = _usage(17, 15, "98765.4321", request.param)
    return usage, print_report(usage, tmp_path_factory.mktemp(f"print-{request.param}"))


def _money(amount: Decimal, currency: str) -> str:
    return f"${amount:,.2f}" if currency == "usd" else f"{amount:,.2f} CHF"


def test_no_page_shows_hashes_instead_of_a_value(seventeen_tenants):
    usage, printed = seventeen_tenants
    assert usage.cost > Decimal("10_000_000")
    for number, page in enumerate(printed.pages, start=1):
        assert "###" not in page, f"page {number}:\n{page}"
    summary = "\n".join(printed.summary_pages)
    assert "2026-12-31 23:59:59" in summary
    assert _money(usage.cost, usage.currency) in summary
    assert f"{usage.units:.4f}" in summary
    for tenant in usage.tenants:
        assert _money(tenant.cost, usage.currency) in summary


def test_every_page_is_landscape(seventeen_tenants):
    _usage, printed = seventeen_tenants
    assert all(width > height for width, height in printed.sizes)


def test_summary_of_a_17_tenant_month_prints_on_one_page_wide(seventeen_tenants):
    _usage, printed = seventeen_tenants
    pages = printed.summary_pages
    assert 1 <= len(pages) <= 2
    for page in pages:
        # One page wide: the first and the last column print on the same page.
        assert re.search(r"Tenant\s.*Billable users.*Notes\s+Sheet", page)
    summary = "\n".join(pages)
    assert summary.count("Open sheet") == 17
    assert "Offboarded 30 September 2026" in summary


def test_tenant_sheets_are_one_page_wide_with_the_header_on_every_page(seventeen_tenants):
    usage, printed = seventeen_tenants
    big = usage.tenants[0]
    assert len(big.lines) == 120
    pages = printed.tenant_sheet_pages(big.name)
    assert len(pages) >= 2
    for page in pages:
        assert re.search(r"Display name\s+User principal name.*Prorated cost", page), page
    assert _money(big.cost, usage.currency) in pages[-1]
    small = usage.tenants[1]
    [page] = printed.tenant_sheet_pages(small.name)
    assert _money(small.cost, usage.currency) in page
    assert small.lines[-1].user_principal_name in page


def test_a_long_summary_repeats_its_header_on_every_page(tmp_path):
    usage = _usage(90, 2, "3.00", "usd")
    printed = print_report(usage, tmp_path)
    pages = printed.summary_pages
    assert len(pages) >= 2
    for page in pages:
        assert re.search(r"Tenant\s.*Billable users.*Prorated cost\s+Notes\s+Sheet", page), page
    assert "\n".join(pages).count("Open sheet") == 90
    assert all("###" not in page for page in printed.pages)
