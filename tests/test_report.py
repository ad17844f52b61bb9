"""The itemized `.xlsx` report, read back with openpyxl and python-calamine and compared with
the proration it was written from."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from billing_app.figures.calculator import MonthUsage, TenantUsage, UserLine, month_usage
from billing_app.figures.months import Month
from billing_app.figures.proration import prorated_cost
from billing_app.reports.writer import (
    CELL_TEXT_LIMIT,
    SUMMARY_HEADER_ROW,
    TENANT_COLUMNS,
    TENANT_HEADER_ROW,
    TRUNCATION_MARK,
    cell_text,
    money_format,
    report_filename,
    sheet_names,
    write_report,
)
from tests.factories import ALWAYS, add_tenant, d, make_organisation

APRIL = Month(2026, 4)
TODAY = d("2026-06-15")
GENERATED_AT = dt.datetime(2026, 6, 15, 8, 30, 12, tzinfo=dt.UTC)
LONG_NAME = "Ada " + "x" * 480
FORMULA_LIKE = [
    "=1+2",
    "{=SUM(A1:A2)}",
    "+44 20 7946 0000",
    "-12",
    "@SUM(1,2)",
    '=HYPERLINK("https://evil.example","click")',
    "https://evil.example/login",
    "mailto:someone@evil.example",
    "0042",
    "1e5",
    "TRUE",
    "  padded  ",
    "_x0041_ literal",
    "Line\nbreak",
    "bell\x07",
]
TENANT_NAMES = [
    "Contoso Ltd",
    "contoso ltd",
    "history",
    "HISTORY",
    "Summary",
    "O'Brien's [EU]: a/b*c?d\\e",
    "'Quoted'",
    "A very long tenant name that does not fit 1",
    "A very long tenant name that does not fit 2",
    '=HYPERLINK("https://evil.example","click")',
    "Ärzte GmbH 😀",
    "Empty Tenant",
]
SHEET_NAME_RULES = re.compile(r"[^\[\]:*?/\\]{1,31}")


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def usage(ctx) -> MonthUsage:
    """April 2026 of an organisation whose tenants and users try every rule of the report."""
    organisation = make_organisation("report-msp", unit_price="2.97")
    organisation.name = "=Report MSP"
    for name in TENANT_NAMES:
        if name == "Contoso Ltd":
            users = [("Grace Hopper", ALWAYS), (LONG_NAME, (("2026-04-16", None),))]
            users += [(text, (("2026-04-03", "2026-04-20"),)) for text in FORMULA_LIKE]
            add_tenant(organisation, name, pauses=(("2026-04-10", "2026-04-12"),), users=users)
        elif name == "Empty Tenant":
            add_tenant(organisation, name, onboarded_on="2026-04-20")
        else:
            add_tenant(organisation, name, users=((f"User of {name}", ALWAYS),))
    return month_usage(organisation, APRIL, TODAY)


@pytest.fixture
def report(usage: MonthUsage, tmp_path: Path) -> Path:
    target = tmp_path / "report.xlsx"
    write_report(usage, _organisation(usage), GENERATED_AT, target, tenants=usage.tenants)
    return target


def _organisation(usage: MonthUsage) -> SimpleNamespace:
    return SimpleNamespace(name=usage.organisation_name, slug=usage.organisation_slug)


def _sheet_of(location: str) -> str:
    match = re.fullmatch(r"'((?:[^']|'')+)'!A1", location)
    assert match, location
    return match.group(1).replace("''", "'")


def _values(path: Path) -> dict[str, list[list[object]]]:
    """Every sheet's cached values, as a reader that does not recalculate sees them."""
    workbook = CalamineWorkbook.from_path(str(path))
    return {name: workbook.get_sheet_by_name(name).to_python() for name in workbook.sheet_names}


def test_sheet_names_follow_excel_rules(usage, report):
    workbook = openpyxl.load_workbook(report)
    names = workbook.sheetnames
    assert names == ["Summary", *sheet_names(t.name for t in usage.tenants)]
    assert len({name.casefold() for name in names}) == len(names)
    for name in names:
        assert SHEET_NAME_RULES.fullmatch(name), name
        assert not name.startswith("'") and not name.endswith("'")
        assert name.casefold() != "history"
    sheet_of = dict(zip((t.name for t in usage.tenants), names[1:], strict=True))
    assert sheet_of == {
        "'Quoted'": "Quoted",
        '=HYPERLINK("https://evil.example","click")': '=HYPERLINK("https---evil.exampl',
        "A very long tenant name that does not fit 1": "A very long tenant name that do",
        "A very long tenant name that does not fit 2": "A very long tenant name tha (2)",
        "Contoso Ltd": "Contoso Ltd",
        "contoso ltd": "contoso ltd (2)",
        "Empty Tenant": "Empty Tenant",
        "HISTORY": "HISTORY (2)",
        "history": "history (3)",
        "O'Brien's [EU]: a/b*c?d\\e": "O'Brien's (EU)- a-b-c-d-e",
        "Summary": "Summary (2)",
        "Ärzte GmbH 😀": "Ärzte GmbH 😀",
    }
    # The full name is always written inside the sheet.
    for tenant, name in zip(usage.tenants, names[1:], strict=True):
        assert workbook[name]["B1"].value == tenant.name


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["History", "history", "HiStOrY"], ["History (2)", "history (3)", "HiStOrY (4)"]),
        (["Summary", "summary"], ["Summary (2)", "summary (3)"]),
        (["a" * 40, "A" * 40], ["a" * 31, "A" * 27 + " (2)"]),
        (["'x'", "''", "   ", "x'"], ["x", "Tenant", "Tenant (2)", "x (2)"]),
        (["[a]:b*c?d/e\\f"], ["(a)-b-c-d-e-f"]),
        (["tab\there\nnewline"], ["tab here newline"]),
        (["ab", "AB", "ab (2)"], ["ab", "AB (2)", "ab (2) (2)"]),
        (["😀" * 20], ["😀" * 15]),
        ([("x" * 29) + "'y"], [("x" * 29) + "'y"]),
        ([("x" * 30) + "'y"], ["x" * 30]),
    ],
)
def test_sheet_names(names, expected):
    result = sheet_names(names)
    assert result == expected
    for name in result:
        assert len(name.encode("utf-16-le")) // 2 <= 31
        assert SHEET_NAME_RULES.fullmatch(name) and name[0] != "'" and name[-1] != "'"


def test_summary_matches_the_proration(usage, report):
    header = SUMMARY_HEADER_ROW
    sheet = openpyxl.load_workbook(report)["Summary"]
    assert sheet["B2"].value == "=Report MSP" and sheet["B2"].data_type == "s"
    assert sheet["B3"].value == "April 2026"
    assert sheet["B5"].value == dt.datetime(2026, 6, 15, 8, 30, 12) and sheet["B5"].is_date
    assert sheet["B6"].value == 2.97 and "$" in sheet["B6"].number_format

    rows = _values(report)["Summary"]
    assert rows[header][:4] == ["Tenant", "Billable users", "Prorated units", "Prorated cost"]
    for tenant, row in zip(usage.tenants, rows[header + 1 :], strict=False):
        assert row[:4] == [
            tenant.name,
            tenant.billable_users,
            float(tenant.units),
            float(tenant.cost),
        ]
    total_row = header + 1 + len(usage.tenants)
    assert rows[total_row][:4] == [
        "Total",
        usage.billable_users,
        pytest.approx(float(usage.units)),
        float(usage.cost),
    ]
    assert [sheet.cell(total_row + 1, col).value for col in (2, 3, 4)] == [
        f"=SUM(B{header + 2}:B{total_row})",
        f"=SUM(C{header + 2}:C{total_row})",
        f"=SUM(D{header + 2}:D{total_row})",
    ]
    cells = [Decimal(str(row[3])) for row in rows[header + 1 : total_row]]
    assert sum(cells) == usage.cost == sum(t.cost for t in usage.tenants)


def test_tenant_sheets_match_the_proration(usage, report):
    header = TENANT_HEADER_ROW
    workbook = openpyxl.load_workbook(report)
    values = _values(report)
    names = workbook.sheetnames[1:]
    for tenant, name in zip(usage.tenants, names, strict=True):
        rows = values[name]
        assert rows[0][:2] == ["Tenant", tenant.name]
        assert rows[1][:2] == ["Microsoft tenant ID", tenant.microsoft_tenant_id]
        if not tenant.lines:
            continue
        assert rows[header] == list(TENANT_COLUMNS)
        for line, row in zip(tenant.lines, rows[header + 1 :], strict=False):
            assert row == [
                cell_text(line.display_name),
                cell_text(line.user_principal_name),
                line.billable_from,
                line.billable_to,
                line.billable_days,
                line.days_in_month,
                float(line.units),
                float(line.unit_price),
                float(line.cost),
            ]
        total = rows[header + 1 + len(tenant.lines)]
        assert total[0] == "Total"
        assert total[4] == tenant.billable_days
        assert total[6] == pytest.approx(float(tenant.units))
        assert total[8] == float(tenant.cost)
        first, last = header + 2, header + 1 + len(tenant.lines)
        sheet = workbook[name]
        formulas = [sheet.cell(last + 1, col).value for col in (5, 7, 9)]
        assert formulas == [
            f"=SUM(E{first}:E{last})",
            f"=SUM(G{first}:G{last})",
            f"=SUM(I{first}:I{last})",
        ]
        assert sum(Decimal(str(row[8])) for row in rows[header + 1 : last]) == tenant.cost


def test_contoso_figures(usage):
    contoso = next(t for t in usage.tenants if t.name == "Contoso Ltd")
    grace = next(line for line in contoso.lines if line.display_name == "Grace Hopper")
    assert (grace.billable_days, grace.cost) == (28, Decimal("2.77"))
    formula_user = next(line for line in contoso.lines if line.display_name == "=1+2")
    # 3rd to 19th minus the pause on the 10th and 11th: 15 of 30 days at 2.97 = 1.485.
    assert (formula_user.billable_days, formula_user.cost) == (15, Decimal("1.49"))
    assert contoso.paused_in_month


def test_customer_text_is_never_a_formula_or_link(usage, report):
    workbook = openpyxl.load_workbook(report)
    customer_text = {usage.organisation_name}
    for tenant in usage.tenants:
        customer_text |= {tenant.name, tenant.microsoft_tenant_id}
        customer_text |= {cell_text(line.display_name) for line in tenant.lines}
        customer_text |= {cell_text(line.user_principal_name) for line in tenant.lines}
    found: set[str] = set()
    for sheet in workbook:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    assert re.fullmatch(r"=SUM\([A-I]\d+:[A-I]\d+\)", cell.value), cell.value
                if cell.hyperlink is not None:
                    assert cell.value in {"Open sheet", "Back to Summary"}
                    assert cell.hyperlink.target is None
                if cell.value in customer_text:
                    assert cell.data_type == "s" and cell.hyperlink is None
                    found.add(cell.value)
    # openpyxl leaves Excel's "_xHHHH_" escapes of control characters and of "_x" escaped.
    escaped = re.compile(r"[\x00-\x08\x0b-\x1f]|_x[0-9A-Fa-f]{4}_")
    assert found == {text for text in customer_text if not escaped.search(text)}
    # Readers that unescape see the text exactly as it was.
    contoso = _values(report)["Contoso Ltd"]
    assert {row[0] for row in contoso} >= set(FORMULA_LIKE)
    # In the XML, the only formulas are the totals: one per total cell.
    with zipfile.ZipFile(report) as archive:
        formulas = sum(
            archive.read(name).decode().count("<f>")
            for name in archive.namelist()
            if name.startswith("xl/worksheets/")
        )
    assert formulas == 3 + 3 * sum(1 for t in usage.tenants if t.lines)


def test_hyperlinks_reach_the_tenant_sheets(usage, report):
    workbook = openpyxl.load_workbook(report)
    summary = workbook["Summary"]
    first = SUMMARY_HEADER_ROW + 2
    for offset, name in enumerate(workbook.sheetnames[1:]):
        link = summary.cell(first + offset, 6)
        assert link.value == "Open sheet"
        assert _sheet_of(link.hyperlink.location) == name
        assert summary.cell(first + offset, 1).value == usage.tenants[offset].name
        back = workbook[name]["A6"]
        assert _sheet_of(back.hyperlink.location) == "Summary"


def test_dates_money_units_and_layout(usage, report):
    workbook = openpyxl.load_workbook(report)
    sheet = workbook["Contoso Ltd"]
    row = TENANT_HEADER_ROW + 2
    for col in "CD":
        cell = sheet[f"{col}{row}"]
        assert cell.is_date and cell.number_format == "yyyy-mm-dd"
        assert isinstance(cell.value, dt.datetime)
    assert sheet[f"G{row}"].number_format == "0.0000"
    assert sheet[f"H{row}"].number_format == money_format("usd", "00##")
    assert sheet[f"I{row}"].number_format == '"$"#,##0.00'
    contoso = next(t for t in usage.tenants if t.name == "Contoso Ltd")
    last = TENANT_HEADER_ROW + 1 + len(contoso.lines)
    assert sheet.freeze_panes == f"A{TENANT_HEADER_ROW + 2}"
    assert sheet.auto_filter.ref == f"A{TENANT_HEADER_ROW + 1}:I{last}"
    assert 20 <= sheet.column_dimensions["A"].width <= 62
    assert sheet.column_dimensions["C"].width >= 12
    summary = workbook["Summary"]
    assert summary.freeze_panes == f"A{SUMMARY_HEADER_ROW + 2}"
    assert summary.auto_filter.ref == f"A{SUMMARY_HEADER_ROW + 1}:F{SUMMARY_HEADER_ROW + 13}"
    values = _values(report)["Contoso Ltd"]
    assert isinstance(values[TENANT_HEADER_ROW + 1][2], dt.date)


def test_tenant_without_billable_users_says_so(report):
    sheet = openpyxl.load_workbook(report)["Empty Tenant"]
    assert sheet.cell(TENANT_HEADER_ROW + 1, 1).value == "No billable users in April 2026."
    assert sheet["B5"].value == "Onboarded 20 April 2026"


def test_long_text_is_truncated_visibly(tmp_path):
    # The database holds at most 500 characters; the report does not rely on it.
    usage = _synthetic_usage(1)
    tenant = usage.tenants[0]
    line = replace(tenant.lines[0], display_name="Ada " + "x" * 40_000, user_principal_name="u")
    tenant = replace(tenant, name="T" * 33_000, microsoft_tenant_id="😀" * 17_000, lines=(line,))
    usage = replace(usage, tenants=(tenant,))
    target = tmp_path / "long.xlsx"
    long = SimpleNamespace(name="O" * 40_000, slug="long")
    write_report(usage, long, GENERATED_AT, target, tenants=usage.tenants)
    values = _values(target)
    assert list(values) == ["Summary", "T" * 31]
    cut = [
        values["Summary"][1][1],
        values["Summary"][SUMMARY_HEADER_ROW + 1][0],
        values["T" * 31][0][1],
        values["T" * 31][1][1],
        values["T" * 31][TENANT_HEADER_ROW + 1][0],
    ]
    for text in cut:
        assert text.endswith(TRUNCATION_MARK)
        assert len(text.encode("utf-16-le")) // 2 <= CELL_TEXT_LIMIT
    assert cut[0] == "O" * (CELL_TEXT_LIMIT - len(TRUNCATION_MARK)) + TRUNCATION_MARK
    assert values["T" * 31][TENANT_HEADER_ROW + 1][1] == "u"


def test_cell_text_counts_utf16_units():
    assert cell_text("short") == "short"
    exact = "x" * CELL_TEXT_LIMIT
    assert cell_text(exact) == exact
    wide = "😀" * 20_000  # 40,000 UTF-16 code units
    cut = cell_text(wide)
    assert cut.endswith(TRUNCATION_MARK)
    assert len(cut.encode("utf-16-le")) // 2 <= CELL_TEXT_LIMIT


def test_same_data_gives_the_same_bytes(usage, report, tmp_path):
    again = tmp_path / "again.xlsx"
    write_report(usage, _organisation(usage), GENERATED_AT, again, tenants=usage.tenants)
    assert again.read_bytes() == report.read_bytes()
    later = tmp_path / "later.xlsx"
    later_at = GENERATED_AT + dt.timedelta(seconds=1)
    write_report(usage, _organisation(usage), later_at, later, tenants=usage.tenants)
    assert later.read_bytes() != report.read_bytes()


def test_month_to_date_report(ctx, tmp_path):
    organisation = make_organisation("mtd-msp")
    add_tenant(organisation, "Contoso", users=(("Grace", ALWAYS),))
    usage = month_usage(organisation, APRIL, d("2026-04-15"))
    target = tmp_path / "mtd.xlsx"
    write_report(usage, organisation, GENERATED_AT, target, tenants=usage.tenants)
    rows = _values(target)
    assert rows["Summary"][3][1] == (
        "1 April 2026 to 15 April 2026 (month to date: later days are not counted yet)"
    )
    line = rows["Contoso"][TENANT_HEADER_ROW + 1]
    assert line[2:6] == [dt.date(2026, 4, 1), dt.date(2026, 4, 15), 15, 30]
    assert line[8] == 1.50


def test_report_without_tenants(ctx, tmp_path):
    organisation = make_organisation("empty-msp")
    usage = month_usage(organisation, APRIL, TODAY)
    target = tmp_path / "empty.xlsx"
    write_report(usage, organisation, GENERATED_AT, target, tenants=usage.tenants)
    rows = _values(target)
    assert list(rows) == ["Summary"]
    assert rows["Summary"][SUMMARY_HEADER_ROW + 1][0] == "No tenants were onboarded in April 2026."
    assert rows["Summary"][SUMMARY_HEADER_ROW + 2][:4] == ["Total", 0, 0, 0]


def _synthetic_usage(tenants: int) -> MonthUsage:
    """April 2026 with `tenants` tenants of one full-month user each, built without a
    database."""
    price = Decimal("3.00")
    line = UserLine(
        identity_id=1,
        external_id="u-1",
        display_name="Grace",
        user_principal_name="grace@example.com",
        billable_from=d("2026-04-01"),
        billable_to=d("2026-04-30"),
        billable_days=30,
        days_in_month=30,
        units=Decimal(1),
        unit_price=price,
        cost=prorated_cost(price, 30, 30),
        tenant_id=0,
        month=APRIL,
    )
    rows = tuple(
        TenantUsage(
            tenant_id=i,
            external_id=f"t-{i}",
            name=f"Tenant {i}",
            microsoft_tenant_id=f"00000000-0000-0000-0000-{i:012d}",
            onboarded_on=d("2026-01-01"),
            offboarded_on=None,
            onboarded_in_month=False,
            offboarded_in_month=False,
            paused_in_month=False,
            pauses_in_month=(),
            lines=(line,),
            billable_users=1,
            billable_days=30,
            units=Decimal(1),
            cost=line.cost,
        )
        for i in range(tenants)
    )
    return MonthUsage(
        organisation_id=1,
        organisation_slug="big",
        organisation_name="Big",
        month=APRIL,
        today=TODAY,
        month_to_date=False,
        counted_end=d("2026-05-01"),
        days_in_month=30,
        unit_price=price,
        currency="usd",
        tenants=rows,
        billable_users=tenants,
        billable_days=30 * tenants,
        units=Decimal(tenants),
        cost=line.cost * tenants,
    )


def test_many_tenants_do_not_hold_a_file_each(tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(list(Path("/proc/self/fd").iterdir())) if Path("/proc/self/fd").exists() else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(in_use + 100, hard), hard))
    try:
        usage = _synthetic_usage(400)
        write_report(
            usage,
            SimpleNamespace(name="Big", slug="big"),
            GENERATED_AT,
            tmp_path / "big.xlsx",
            tenants=usage.tenants,
            tmpdir=str(tmp_path),
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(_values(tmp_path / "big.xlsx")) == 401
    assert [p.name for p in tmp_path.iterdir()] == ["big.xlsx"]


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("usd", '"$"#,##0.00'),
        ("EUR", '"€"#,##0.00'),
        ("gbp", '"£"#,##0.00'),
        ("chf", '#,##0.00 "CHF"'),
        ('x"y', '#,##0.00 "XY"'),
    ],
)
def test_money_format(currency, expected):
    assert money_format(currency) == expected


def test_report_filename():
    organisation = SimpleNamespace(slug="northwind-msp", name="Northwind")
    assert report_filename(organisation, Month(2026, 11)) == "usage-northwind-msp-2026-11.xlsx"
    odd = SimpleNamespace(slug='a b/"c"', name="x")
    assert report_filename(odd, Month(2026, 1)) == "usage-a-b-c-2026-01.xlsx"
