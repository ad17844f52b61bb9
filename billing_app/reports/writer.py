"""The itemized usage report: an `.xlsx` workbook with a Summary sheet and one sheet per tenant.

The workbook is written with XlsxWriter in `constant_memory` mode, row by row, so memory stays
flat however many users the month has. Customer-controlled text is only ever written as text.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from billing_app.figures.calculator import MonthTotals, TenantUsage
from billing_app.figures.months import Month
from billing_app.formats import CURRENCY_SYMBOLS

CELL_TEXT_LIMIT = 32_767
"""Excel's limit on the length of a cell's text, in UTF-16 code units."""
TRUNCATION_MARK = "… [truncated]"
SHEET_NAME_LIMIT = 31
SUMMARY_SHEET = "Summary"
_RESERVED_SHEET_NAMES = ("History", SUMMARY_SHEET)
_FORBIDDEN_IN_SHEET_NAMES = str.maketrans("[]:*?/\\", "()-----")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\s]+")

_DATE_FORMAT = "yyyy-mm-dd"
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_UNITS_FORMAT = "0.0000"
_COUNT_FORMAT = "#,##0"
_MAX_TEXT_WIDTH = 45
"""Text columns wider than this wrap instead, so that a sheet printed one page wide stays
legible."""
_MAX_ADDRESS_WIDTH = 60
"""User principal names have no spaces to wrap at: their column may be wider."""
_DATETIME_WIDTH = len("2026-12-31 23:59:59") + 3
_PADDING = 2
_HEADER_WIDENING = 1.2
"""Headers are bold, and bold letters are wider than the digits a column's width counts."""
_LINE_HEIGHT = 15
"""Points per line of wrapped text: Excel's default row height for its default font."""
_HEADER_HEIGHT = 2 * _LINE_HEIGHT
"""Table headers take up to two lines."""
_MAX_ROW_HEIGHT = 409
_NARROW_CHARACTERS = frozenset(" .,:;'|!-()[]ijlftrI")
_WRAP_TOKENS = re.compile(r"[^\s-]*-|[^\s-]+|\s")

TENANT_COLUMNS = (
    "Display name",
    "User principal name",
    "Billable from",
    "Billable to",
    "Billable days",
    "Days in month",
    "Prorated units",
    "Unit price",
    "Prorated cost",
)
SUMMARY_COLUMNS = ("Tenant", "Billable users", "Prorated units", "Prorated cost", "Notes", "Sheet")
SUMMARY_HEADER_ROW = 7
TENANT_HEADER_ROW = 6


class NamedOrganisation(Protocol):
    """What the report needs of an organisation (an `Organisation` has it)."""

    name: str
    slug: str


def report_filename(organisation: NamedOrganisation, month: Month) -> str:
    """The report's file name, `usage-<organisation-slug>-YYYY-MM.xlsx`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", organisation.slug).strip("-.") or "organisation"
    return f"usage-{slug}-{month}.xlsx"


# --- Text and sheet names --------------------------------------------------------------------


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf16_prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` UTF-16 code units."""
    if _utf16_length(text) <= limit:
        return text
    units = 0
    for index, character in enumerate(text):
        units += 2 if ord(character) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def cell_text(text: str) -> str:
    """`text` as it fits in a cell: longer than Excel's limit, cut visibly with a mark."""
    if len(text) <= CELL_TEXT_LIMIT // 2 or _utf16_length(text) <= CELL_TEXT_LIMIT:
        return text
    return _utf16_prefix(text, CELL_TEXT_LIMIT - len(TRUNCATION_MARK)) + TRUNCATION_MARK


def _sheet_name_base(name: str, limit: int) -> str:
    cleaned = _CONTROL_CHARACTERS.sub(" ", name.translate(_FORBIDDEN_IN_SHEET_NAMES))
    cleaned = _utf16_prefix(cleaned.strip(" '"), limit).strip(" '")
    return cleaned or "Tenant"


def sheet_names(names: Iterable[str], taken: Iterable[str] = _RESERVED_SHEET_NAMES) -> list[str]:
    """Excel sheet names for `names`, in order: at most 31 characters, none of `[]:*?/\\`, no
    leading or trailing apostrophe, and unique ignoring case among themselves and `taken`
    (duplicates get " (2)", " (3)", …)."""
    used = {key for name in taken for key in (name.lower(), name.casefold())}
    next_number: dict[str, int] = {}
    result: list[str] = []
    for name in names:
        base = _sheet_name_base(name, SHEET_NAME_LIMIT)
        candidate = base
        number = next_number.get(base.casefold(), 1)
        while candidate.lower() in used or candidate.casefold() in used:
            number += 1
            suffix = f" ({number})"
            candidate = _sheet_name_base(base, SHEET_NAME_LIMIT - len(suffix)) + suffix
        next_number[base.casefold()] = number
        used.update((candidate.lower(), candidate.casefold()))
        result.append(candidate)
    return result


def internal_link(sheet_name: str) -> str:
    """An XlsxWriter URL to cell A1 of a sheet of the same workbook."""
    return "internal:'" + sheet_name.replace("'", "''") + "'!A1"


# --- Formats ---------------------------------------------------------------------------------


def money_format(currency: str, decimals: str = "00") -> str:
    """An Excel number format for amounts in `currency` (a symbol for USD, EUR and GBP,
    otherwise the ISO code)."""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f'"{symbol}"#,##0.{decimals}'
    code = re.sub(r"[^A-Z]", "", currency.upper()) or "?"
    return f'#,##0.{decimals} "{code}"'


class _Formats:
    """The workbook's cell formats, created once."""

    def __init__(self, workbook: xlsxwriter.Workbook, currency: str) -> None:
        add = workbook.add_format
        money = money_format(currency)
        self.title = add({"bold": True, "font_size": 14})
        self.label = add({"bold": True})
        heading = {"bold": True, "bottom": 1, "bg_color": "#E8EEF4", "text_wrap": True}
        self.header = add(heading)
        self.header_number = add(heading | {"align": "right"})
        self.note = add({"italic": True, "font_color": "#595959"})
        self.wrapped = add({"text_wrap": True})
        self.notes = add({"text_wrap": True, "indent": 1})
        self.indented = add({"indent": 1})
        self.header_notes = add(heading | {"indent": 1})
        self.date = add({"num_format": _DATE_FORMAT})
        self.datetime = add({"num_format": _DATETIME_FORMAT, "align": "left"})
        self.count = add({"num_format": _COUNT_FORMAT})
        self.units = add({"num_format": _UNITS_FORMAT})
        self.money = add({"num_format": money})
        self.price = add({"num_format": money_format(currency, "00##")})
        self.price_left = add({"num_format": money_format(currency, "00##"), "align": "left"})
        self.total_label = add({"bold": True, "top": 1})
        self.total_blank = add({"top": 1})
        self.total_count = add({"bold": True, "top": 1, "num_format": _COUNT_FORMAT})
        self.total_units = add({"bold": True, "top": 1, "num_format": _UNITS_FORMAT})
        self.total_money = add({"bold": True, "top": 1, "num_format": money})


@dataclass(frozen=True, slots=True)
class _TextColumn:
    """A text column's width, and which of its texts may need more than one line."""

    width: int
    wraps: bool
    """Whether some text is wider than the column (its cells then wrap)."""

    def may_wrap(self, text: str) -> bool:
        """Whether `text` may need more than one line (cheap, for every cell)."""
        if not self.wraps or len(text) * 2 <= self.width - _PADDING:
            return False
        return len(text) > self.width - _PADDING or not text.isascii()


def _text_column(texts: Iterable[str], minimum: int, maximum: int = _MAX_TEXT_WIDTH) -> _TextColumn:
    """A text column as wide as its widest text, between `minimum` and the widest a column
    gets before its text wraps. ASCII text is sized by its length (letters are about as wide
    as digits, many narrower), other text by its characters."""
    widest = 0.0
    for text in texts:
        size = len(text) if text.isascii() else sum(map(_character_width, text[:200]))
        widest = max(widest, size)
    needed = max(math.ceil(widest), minimum) + _PADDING
    return _TextColumn(min(needed, maximum), wraps=needed > maximum)


def _number_width(shown: Iterable[str], header: str) -> int:
    """A number column's width: wide enough for every value as shown, so that no reader
    shows `###` instead of a number, and for each word of its header (which wraps onto the
    header row's second line)."""
    header_width = math.ceil(max(map(len, header.split())) * _HEADER_WIDENING)
    return max(header_width, max(map(len, shown), default=0)) + _PADDING


def _character_width(character: str) -> float:
    """About how wide a character is, in widths of a digit (what column widths count)."""
    if character.isdigit():
        return 1.0
    if character in _NARROW_CHARACTERS:
        return 0.5
    if unicodedata.east_asian_width(character) in "WF":
        return 2.0
    if character.isupper() or character in "mw@%&":
        return 1.2
    return 0.9


def _wrapped_lines(text: str, width: int) -> int:
    """About how many lines `text` takes wrapped at spaces and hyphens in a column of
    `width`, counted generously (a line too many leaves a gap, a line too few overlaps)."""
    if text.isascii() and len(text) <= width - _PADDING:
        return 1
    room = max(1.0, width - 1.5)
    lines, used = 1, 0.0
    for token in _WRAP_TOKENS.findall(text[:20_000]):
        size = sum(map(_character_width, token))
        if token.isspace() or used + size <= room:
            used += size
            continue
        if used > 0:
            lines += 1
        while size > room:
            lines += 1
            size -= room
        used = size
    return lines


def _row_height(texts: Iterable[tuple[str, int]]) -> int | None:
    """The height in points of a row whose (text, column width) pairs wrap, or None when
    every text fits on one line. Readers keep the height a file gives a row rather than fit
    it to wrapped text, so the report sets it."""
    lines = max((_wrapped_lines(text, width) for text, width in texts), default=1)
    return None if lines == 1 else min(lines * _LINE_HEIGHT, _MAX_ROW_HEIGHT)


def _shown_money(amount: object, currency: str) -> str:
    """`amount` about as the money format shows it (used to size its column)."""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    text = f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def _shown_price(amount: object, currency: str) -> str:
    """A unit price as its format shows it at its longest (four decimals)."""
    return _shown_money(amount, currency) + "00"


def _print_setup(sheet: Worksheet, header_row: int | None) -> None:
    """Landscape, one page wide, the table's header row on every page, and the sheet's name
    and page number in the footer."""
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.7)
    if header_row is not None:
        sheet.repeat_rows(header_row)
    sheet.set_footer("&L&A&RPage &P of &N")


def _long_date(day: dt.date) -> str:
    return f"{day.day} {Month.of(day).label}"


def tenant_notes(tenant: TenantUsage) -> str:
    """What happened to the tenant during the month, for people."""
    notes = []
    if tenant.onboarded_in_month:
        notes.append(f"Onboarded {_long_date(tenant.onboarded_on)}")
    if tenant.paused_in_month:
        notes.append("Paused during the month")
    if tenant.offboarded_in_month and tenant.offboarded_on is not None:
        notes.append(f"Offboarded {_long_date(tenant.offboarded_on)}")
    return "; ".join(notes)


def counted_days_text(usage: MonthTotals) -> str:
    """Which days of the month the figures count."""
    if usage.counted_end <= usage.month.first_day:
        return f"None yet ({usage.month.label} has not started)"
    last = usage.last_counted_day
    text = f"{_long_date(usage.month.first_day)} to {_long_date(last)}"
    if usage.month_to_date:
        text += " (month to date: later days are not counted yet)"
    return text


# --- Writing ---------------------------------------------------------------------------------


def _excel_naive_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def write_report(
    usage: MonthTotals,
    organisation: NamedOrganisation,
    generated_at: dt.datetime,
    target: str | os.PathLike[str],
    *,
    tenants: Iterable[TenantUsage],
    tmpdir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the itemized report of the month's totals `usage` to the file `target`. The
    same data and `generated_at` give the same bytes.

    The tenant sheets come from `tenants` (the tenants of `usage`, in the same order, with
    their users): read a few at a time, a month of a million users never has to be in memory
    at once. `progress(written, total)` is called after each sheet."""
    generated = _excel_naive_utc(generated_at)
    options = {
        "constant_memory": True,
        "tmpdir": tmpdir or tempfile.gettempdir(),
        "default_date_format": _DATE_FORMAT,
        "strings_to_numbers": False,
        "strings_to_formulas": False,
        "strings_to_urls": False,
    }
    with xlsxwriter.Workbook(os.fspath(target), options) as workbook:
        workbook.set_properties(
            {
                "title": f"Usage report {usage.month.label}",
                "subject": "Itemized usage",
                "author": "Petra",
                "company": "Petra",
                "created": generated,
            }
        )
        formats = _Formats(workbook, usage.currency)
        names = sheet_names(tenant.name for tenant in usage.tenants)
        total = 1 + len(names)
        summary = workbook.add_worksheet(SUMMARY_SHEET)
        _write_summary(summary, formats, usage, organisation, generated, names)
        _finish(summary)
        if progress is not None:
            progress(1, total)
        for written, (tenant, name) in enumerate(zip(tenants, names, strict=True), start=2):
            sheet = workbook.add_worksheet(name)
            _write_tenant(sheet, formats, usage, tenant)
            _finish(sheet)
            if progress is not None:
                progress(written, total)


def _finish(sheet: Worksheet) -> None:
    """Release a finished sheet's temporary file handle (XlsxWriter reopens it on close), so
    that a report with thousands of tenants does not hold thousands of open files."""
    close = getattr(sheet, "_opt_close", None)
    if close is not None:
        close()


def _month_rows(usage: MonthTotals) -> tuple[tuple[str, str], ...]:
    return (("Month", usage.month.label), ("Days counted", counted_days_text(usage)))


def _write_labelled(sheet: Worksheet, f: _Formats, first_row: int, *rows: tuple[str, str]) -> None:
    """Label and text pairs, one a row from `first_row`, in the first two columns."""
    for row, (label, text) in enumerate(rows, start=first_row):
        sheet.write_string(row, 0, label, f.label)
        sheet.write_string(row, 1, text)


def _write_summary(
    sheet: Worksheet,
    f: _Formats,
    usage: MonthTotals,
    organisation: NamedOrganisation,
    generated: dt.datetime,
    names: Sequence[str],
) -> None:
    tenants = usage.tenants
    notes = [tenant_notes(tenant) for tenant in tenants]
    currency = usage.currency
    name_column = _text_column((t.name for t in tenants), 20)
    notes_column = _text_column(notes, 12)
    name_width, notes_width = name_column.width, notes_column.width
    sheet.set_column(0, 0, name_width)
    # Column B also holds the values beside the labels above the table, among them the
    # generation time, a date and time that needs all of its width.
    users = (f"{n:,}" for n in (usage.billable_users, *(t.billable_users for t in tenants)))
    sheet.set_column(1, 1, max(_number_width(users, SUMMARY_COLUMNS[1]), _DATETIME_WIDTH))
    units = (f"{u:.4f}" for u in (usage.units, *(t.units for t in tenants)))
    sheet.set_column(2, 2, _number_width(units, SUMMARY_COLUMNS[2]))
    costs = (_shown_money(c, currency) for c in (usage.cost, *(t.cost for t in tenants)))
    sheet.set_column(3, 3, _number_width(costs, SUMMARY_COLUMNS[3]))
    sheet.set_column(4, 4, notes_width)
    sheet.set_column(5, 5, 12)
    _print_setup(sheet, SUMMARY_HEADER_ROW if tenants else None)

    write_string = sheet.write_string
    write_string(0, 0, "Usage report", f.title)
    _write_labelled(
        sheet, f, 1, ("Organisation", cell_text(organisation.name)), *_month_rows(usage)
    )
    write_string(4, 0, "Generated at (UTC)", f.label)
    sheet.write_datetime(4, 1, generated, f.datetime)
    write_string(5, 0, "Unit price", f.label)
    sheet.write_number(5, 1, float(usage.unit_price), f.price_left)
    write_string(5, 2, f"per billable user per month ({usage.currency.upper()})")

    header = SUMMARY_HEADER_ROW
    sheet.set_row(header, _HEADER_HEIGHT)
    for col, title in enumerate(SUMMARY_COLUMNS):
        cell_format = f.header_number if col in (1, 2, 3) else f.header
        write_string(header, col, title, f.header_notes if col == 4 else cell_format)
    sheet.freeze_panes(header + 1, 0)

    write_number = sheet.write_number
    row = header
    for tenant, name, note in zip(tenants, names, notes, strict=True):
        row += 1
        height = _row_height(((tenant.name, name_width), (note, notes_width)))
        if height:
            sheet.set_row(row, height)
        write_string(row, 0, cell_text(tenant.name), f.wrapped if name_column.wraps else None)
        write_number(row, 1, tenant.billable_users, f.count)
        write_number(row, 2, float(tenant.units), f.units)
        write_number(row, 3, float(tenant.cost), f.money)
        if note:
            write_string(row, 4, note, f.notes if notes_column.wraps else f.indented)
        sheet.write_url(row, 5, internal_link(name), string="Open sheet")
    if tenants:
        sheet.autofilter(header, 0, row, len(SUMMARY_COLUMNS) - 1)
    else:
        row += 1
        write_string(row, 0, f"No tenants were onboarded in {usage.month.label}.", f.note)

    row += 1
    write_string(row, 0, "Total", f.total_label)
    _write_total(sheet, row, 1, header + 1, row - 1, usage.billable_users, f.total_count, tenants)
    _write_total(sheet, row, 2, header + 1, row - 1, float(usage.units), f.total_units, tenants)
    _write_total(sheet, row, 3, header + 1, row - 1, float(usage.cost), f.total_money, tenants)
    for col in (4, 5):
        sheet.write_blank(row, col, None, f.total_blank)


def _write_total(
    sheet: Worksheet,
    row: int,
    col: int,
    first_row: int,
    last_row: int,
    value: float,
    cell_format: Format,
    rows: Sequence[object],
) -> None:
    """A SUM over the column's rows, carrying its computed value; a plain 0 without rows."""
    if not rows:
        sheet.write_number(row, col, 0, cell_format)
        return
    cells = f"{xl_rowcol_to_cell(first_row, col)}:{xl_rowcol_to_cell(last_row, col)}"
    sheet.write_formula(row, col, f"=SUM({cells})", cell_format, value)


_EXCEL_EPOCH = dt.date(1899, 12, 30).toordinal()


def _date_serials(month: Month) -> dict[dt.date, int]:
    """Excel's serial numbers of the month's days: a date cell is its serial number shown
    with a date format (what `write_datetime` writes), looked up once per month."""
    first = month.first_day.toordinal()
    return {
        dt.date.fromordinal(ordinal): ordinal - _EXCEL_EPOCH
        for ordinal in range(first, first + month.days)
    }


def _write_tenant(sheet: Worksheet, f: _Formats, usage: MonthTotals, tenant: TenantUsage) -> None:
    lines = tenant.lines
    currency = usage.currency
    name_column = _text_column((line.display_name for line in lines), 20)
    upn_column = _text_column((line.user_principal_name for line in lines), 20, _MAX_ADDRESS_WIDTH)
    name_width, upn_width = name_column.width, upn_column.width
    sheet.set_column(0, 0, name_width)
    sheet.set_column(1, 1, upn_width)
    sheet.set_column(2, 3, _number_width(["2026-12-31"], "Billable from"))
    days = (f"{n:,}" for n in (tenant.billable_days, usage.days_in_month))
    sheet.set_column(4, 4, _number_width(days, "Billable days"))
    sheet.set_column(5, 5, _number_width([], "Days in month"))
    sheet.set_column(6, 6, _number_width([f"{tenant.units:.4f}"], "Prorated units"))
    sheet.set_column(7, 7, _number_width([_shown_price(usage.unit_price, currency)], "Unit price"))
    sheet.set_column(8, 8, _number_width([_shown_money(tenant.cost, currency)], "Prorated cost"))
    _print_setup(sheet, TENANT_HEADER_ROW if lines else None)

    write_string = sheet.write_string
    _write_labelled(
        sheet,
        f,
        0,
        ("Tenant", cell_text(tenant.name)),
        ("Microsoft tenant ID", cell_text(tenant.microsoft_tenant_id)),
        *_month_rows(usage),
    )
    notes = tenant_notes(tenant)
    if notes:
        write_string(4, 0, "Notes", f.label)
        write_string(4, 1, notes)
    sheet.write_url(5, 0, internal_link(SUMMARY_SHEET), string="Back to Summary")

    header = TENANT_HEADER_ROW
    if not lines:
        write_string(header, 0, f"No billable users in {usage.month.label}.", f.note)
        return
    sheet.set_row(header, _HEADER_HEIGHT)
    for col, title in enumerate(TENANT_COLUMNS):
        write_string(header, col, title, f.header if col < 2 else f.header_number)
    sheet.freeze_panes(header + 1, 0)

    # One line is nine cells and a report can have hundreds of thousands of lines: the
    # undecorated writers skip XlsxWriter's A1-notation argument check on each cell.
    write_string = getattr(sheet, "_write_string", sheet.write_string)
    write_number = getattr(sheet, "_write_number", sheet.write_number)
    date, units, price, money = f.date, f.units, f.price, f.money
    name_format = f.wrapped if name_column.wraps else None
    upn_format = f.wrapped if upn_column.wraps else None
    name_may_wrap, upn_may_wrap = name_column.may_wrap, upn_column.may_wrap
    serials = _date_serials(usage.month)
    limit = CELL_TEXT_LIMIT // 2
    row = header
    for line in lines:
        row += 1
        name = line.display_name
        upn = line.user_principal_name
        if name_may_wrap(name) or upn_may_wrap(upn):
            height = _row_height(((name, name_width), (upn, upn_width)))
            if height:
                sheet.set_row(row, height)
        write_string(row, 0, name if len(name) <= limit else cell_text(name), name_format)
        write_string(row, 1, upn if len(upn) <= limit else cell_text(upn), upn_format)
        write_number(row, 2, serials[line.billable_from], date)
        write_number(row, 3, serials[line.billable_to], date)
        write_number(row, 4, line.billable_days)
        write_number(row, 5, line.days_in_month)
        write_number(row, 6, float(line.units), units)
        write_number(row, 7, float(line.unit_price), price)
        write_number(row, 8, float(line.cost), money)
    sheet.autofilter(header, 0, row, len(TENANT_COLUMNS) - 1)

    row += 1
    write_string(row, 0, "Total", f.total_label)
    for col in (1, 2, 3, 5, 7):
        sheet.write_blank(row, col, None, f.total_blank)
    _write_total(sheet, row, 4, header + 1, row - 1, tenant.billable_days, f.total_count, lines)
    _write_total(sheet, row, 6, header + 1, row - 1, float(tenant.units), f.total_units, lines)
    _write_total(sheet, row, 8, header + 1, row - 1, float(tenant.cost), f.total_money, lines)
