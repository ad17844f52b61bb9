"""Report benchmark: the itemized `.xlsx` of an organisation of 1,000 tenants x 100 identities.

Builds the organisation into a fresh SQLite file (sample data through the importer), then, in
a separate process so that building does not count, computes the month's usage and writes the
report. Prints the seconds of the proration, of `write_report` and of a baseline (plain
XlsxWriter `constant_memory` writing the same sheets, rows and cell values without formats or
any other logic, in the same process), wall-clock and CPU, with their ratio (target <= 1.3);
and the peak RSS of that process (target <= 200 MB) once the usage is computed and once the
report is written.

    python bench/report_bench.py [--tenants 1000] [--identities-per-tenant 100] [--month 2026-10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xlsxwriter
from sqlalchemy import func, select

from billing_app import create_app
from billing_app.extensions import db
from billing_app.figures.calculator import MonthUsage, month_usage
from billing_app.figures.months import Month
from billing_app.importer import import_file
from billing_app.models import BillablePeriod, Identity, Organisation
from billing_app.reports.writer import (
    SUMMARY_COLUMNS,
    SUMMARY_SHEET,
    TENANT_COLUMNS,
    counted_days_text,
    internal_link,
    sheet_names,
    tenant_notes,
    write_report,
)
from dev.sample_data import organisation_data

SLUG = "bench-msp"
TODAY = dt.date(2026, 11, 24)
GENERATED_AT = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(url: str, tenants: int, identities_per_tenant: int, seed: int) -> dict[str, Any]:
    """The sample organisation imported into a fresh database at `url`."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        db.create_all()
        started = time.perf_counter()
        data = organisation_data(
            slug=SLUG,
            tenants=tenants,
            identities_per_tenant=identities_per_tenant,
            seed=seed,
            today=TODAY,
        )
        import_file(data)
        seconds = time.perf_counter() - started
        identities = db.session.scalar(select(func.count()).select_from(Identity))
        periods = db.session.scalar(select(func.count()).select_from(BillablePeriod))
        db.session.remove()
        db.engine.dispose()
    return {"seconds": seconds, "identities": identities, "periods": periods}


def write_baseline(
    usage: MonthUsage, organisation_name: str, names: list[str], target: str, tmpdir: str
) -> None:
    """Plain XlsxWriter: the report's sheets, rows and cell values, with no formats."""
    options = {"constant_memory": True, "tmpdir": tmpdir}
    month = usage.month.label
    days_counted = counted_days_text(usage)
    with xlsxwriter.Workbook(target, options) as workbook:
        summary = workbook.add_worksheet(SUMMARY_SHEET)
        summary.write_string(0, 0, "Usage report")
        summary.write_string(1, 0, "Organisation")
        summary.write_string(1, 1, organisation_name)
        summary.write_string(2, 0, "Month")
        summary.write_string(2, 1, month)
        summary.write_string(3, 0, "Days counted")
        summary.write_string(3, 1, days_counted)
        summary.write_string(4, 0, "Generated at (UTC)")
        summary.write_datetime(4, 1, GENERATED_AT.replace(tzinfo=None))
        summary.write_string(5, 0, "Unit price")
        summary.write_number(5, 1, float(usage.unit_price))
        summary.write_string(5, 2, "per billable user per month (USD)")
        for col, title in enumerate(SUMMARY_COLUMNS):
            summary.write_string(7, col, title)
        row = 7
        for tenant, name in zip(usage.tenants, names, strict=True):
            row += 1
            summary.write_string(row, 0, tenant.name)
            summary.write_number(row, 1, tenant.billable_users)
            summary.write_number(row, 2, float(tenant.units))
            summary.write_number(row, 3, float(tenant.cost))
            summary.write_string(row, 4, tenant_notes(tenant))
            summary.write_url(row, 5, internal_link(name), string="Open sheet")
        row += 1
        summary.write_string(row, 0, "Total")
        summary.write_formula(row, 1, f"=SUM(B9:B{row})", None, usage.billable_users)
        summary.write_formula(row, 2, f"=SUM(C9:C{row})", None, float(usage.units))
        summary.write_formula(row, 3, f"=SUM(D9:D{row})", None, float(usage.cost))
        for tenant, name in zip(usage.tenants, names, strict=True):
            sheet = workbook.add_worksheet(name)
            sheet.write_string(0, 0, "Tenant")
            sheet.write_string(0, 1, tenant.name)
            sheet.write_string(1, 0, "Microsoft tenant ID")
            sheet.write_string(1, 1, tenant.microsoft_tenant_id)
            sheet.write_string(2, 0, "Month")
            sheet.write_string(2, 1, month)
            sheet.write_string(3, 0, "Days counted")
            sheet.write_string(3, 1, days_counted)
            sheet.write_string(4, 0, "Notes")
            sheet.write_string(4, 1, tenant_notes(tenant))
            sheet.write_url(5, 0, internal_link(SUMMARY_SHEET), string="Back to Summary")
            if not tenant.lines:
                sheet.write_string(6, 0, f"No billable users in {month}.")
                continue
            for col, title in enumerate(TENANT_COLUMNS):
                sheet.write_string(6, col, title)
            row = 6
            for line in tenant.lines:
                row += 1
                sheet.write_string(row, 0, line.display_name)
                sheet.write_string(row, 1, line.user_principal_name)
                sheet.write_datetime(row, 2, line.billable_from)
                sheet.write_datetime(row, 3, line.billable_to)
                sheet.write_number(row, 4, line.billable_days)
                sheet.write_number(row, 5, line.days_in_month)
                sheet.write_number(row, 6, float(line.units))
                sheet.write_number(row, 7, float(line.unit_price))
                sheet.write_number(row, 8, float(line.cost))
            row += 1
            sheet.write_string(row, 0, "Total")
            sheet.write_formula(row, 4, f"=SUM(E8:E{row})", None, tenant.billable_days)
            sheet.write_formula(row, 6, f"=SUM(G8:G{row})", None, float(tenant.units))
            sheet.write_formula(row, 8, f"=SUM(I8:I{row})", None, float(tenant.cost))


def timed(function, *args) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _write_report(usage: MonthUsage, organisation, generated_at, target: str, tmpdir: str) -> None:
    write_report(usage, organisation, generated_at, target, tenants=usage.tenants, tmpdir=tmpdir)


def measure(url: str, month: Month, repeat: int) -> dict[str, Any]:
    """Proration and report timings, and peak RSS, in this process: the peak is taken after
    the first proration and after the first report, before any repeats."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    result: dict[str, Any] = {"rss_start_mb": peak_rss_mb()}
    with app.app_context(), tempfile.TemporaryDirectory() as folder:
        organisation = db.session.scalar(select(Organisation).where(Organisation.slug == SLUG))
        started = time.perf_counter()
        usage = month_usage(organisation, month, TODAY)
        proration = [time.perf_counter() - started]
        result["rss_usage_mb"] = peak_rss_mb()

        report_path = os.path.join(folder, "report.xlsx")
        baseline_path = os.path.join(folder, "baseline.xlsx")
        report_args = (usage, organisation, GENERATED_AT, report_path, folder)
        result["first_report_s"] = timed(_write_report, *report_args)
        result["rss_report_mb"] = peak_rss_mb()

        for _ in range(repeat - 1):
            db.session.expire_all()
            started = time.perf_counter()
            month_usage(organisation, month, TODAY)
            proration.append(time.perf_counter() - started)

        names = sheet_names(tenant.name for tenant in usage.tenants)
        baseline_args = (usage, organisation.name, names, baseline_path, folder)
        report_times, baseline_times = [], []
        for index in range(repeat * 2):
            if index % 4 in (0, 3):
                baseline_times.append(timed(write_baseline, *baseline_args))
            else:
                report_times.append(timed(_write_report, *report_args))
        result["report_bytes"] = os.path.getsize(report_path)
        result["baseline_bytes"] = os.path.getsize(baseline_path)
    result |= {
        "proration_s": proration,
        "report_s": report_times,
        "baseline_s": baseline_times,
        "users": usage.billable_users,
        "tenants": len(usage.tenants),
        "cost": str(usage.cost),
        "rss_end_mb": peak_rss_mb(),
    }
    return result


def _child(*arguments: str) -> dict[str, Any]:
    """Run this script in a child process and read the JSON it prints."""
    command = [sys.executable, __file__, *arguments]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _medians(times: list[list[float]]) -> tuple[float, float]:
    """The median wall-clock and CPU seconds of (wall, CPU) pairs."""
    return (
        statistics.median(wall for wall, _ in times),
        statistics.median(cpu for _, cpu in times),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--month", type=Month.parse, default=Month(2026, 10))
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--build", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--measure", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build:
        built = build(args.build, args.tenants, args.identities_per_tenant, args.seed)
        print(json.dumps(built | {"rss_mb": peak_rss_mb()}))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.month, args.repeat)))
        return

    # Building and measuring each run in a child process of their own: Linux carries a
    # process's peak RSS over into the children it starts, so this process stays small.
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/report-bench.sqlite3"
        built = _child(
            "--build",
            url,
            "--tenants",
            str(args.tenants),
            "--identities-per-tenant",
            str(args.identities_per_tenant),
            "--seed",
            str(args.seed),
        )
        print(
            f"built {args.tenants:,} tenants, {built['identities']:,} identities, "
            f"{built['periods']:,} billable periods in {built['seconds']:.1f} s "
            f"(in a separate process, peak RSS {built['rss_mb']:.0f} MB)"
        )
        figures = _child("--measure", url, "--month", str(args.month), "--repeat", str(args.repeat))

    proration = min(figures["proration_s"])
    report_wall, report_cpu = _medians(figures["report_s"])
    base_wall, base_cpu = _medians(figures["baseline_s"])
    print(
        f"{args.month.label}: {figures['tenants']:,} tenant sheets, "
        f"{figures['users']:,} billable users, total {figures['cost']}"
    )
    print(f"proration (month_usage):  {proration:6.2f} s (best of {len(figures['proration_s'])})")
    print(
        f"write_report:             {report_wall:6.2f} s wall, {report_cpu:6.2f} s CPU "
        f"(median of {len(figures['report_s'])}; the first, cold: "
        f"{figures['first_report_s'][0]:.2f} s wall)"
    )
    print(
        f"baseline XlsxWriter:      {base_wall:6.2f} s wall, {base_cpu:6.2f} s CPU "
        f"(median of {len(figures['baseline_s'])})"
    )
    print(
        f"ratio report / baseline:  {report_wall / base_wall:6.2f} wall, "
        f"{report_cpu / base_cpu:6.2f} CPU (target <= 1.3)"
    )
    print(
        f"file size: report {figures['report_bytes'] / 1e6:.1f} MB, "
        f"baseline {figures['baseline_bytes'] / 1e6:.1f} MB"
    )
    print(
        "peak RSS of the report process (app, proration, then report): "
        f"{figures['rss_report_mb']:.0f} MB (target <= 200 MB); "
        f"{figures['rss_start_mb']:.0f} MB after start-up, "
        f"{figures['rss_usage_mb']:.0f} MB after the proration; "
        f"{figures['rss_end_mb']:.0f} MB after all repeats and baselines"
    )


if __name__ == "__main__":
    main()
