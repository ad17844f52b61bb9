"""Reports at scale: a million-row report (1,000 tenants x 1,000 identities) built by the
report worker, asked for over HTTP the way a member's browser does.

Writes the organisation straight into a fresh database (SQLite by default, or a private
PostgreSQL schema with `--database-url`), starts gunicorn with the production settings and
one report worker (`flask reports worker`) on a queue of this run's own (Redis with
`--queue-url redis://...`, else an SQLite file), signs a member in, then:

- asks for the report of the month that closed last, again every second while it answers
  202 (as the progress page does), until it answers 200 with the file: the first build's
  time, the longest single request, the progress seen, and the worker's peak RSS
  (target < 400 MB);
- asks again: the repeat download (a file send of the same bytes);
- in this process, writes the same cells with plain XlsxWriter (`constant_memory`, no formats
  or other logic), reading the users the same way but timing only the writing: the baseline.

Prints the ratios first build / baseline and repeat / first.

    python bench/report_queue_bench.py [--tenants 1000] [--identities-per-tenant 1000]
                                       [--database-url URL] [--queue-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
import xlsxwriter  # noqa: E402
from load import CSRF_INPUT, gunicorn, schema  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from billing_app import create_app  # noqa: E402
from billing_app.extensions import db  # noqa: E402
from billing_app.figures.cache import month_summary  # noqa: E402
from billing_app.figures.months import Month, today_utc  # noqa: E402
from billing_app.models import (  # noqa: E402
    BillablePeriod,
    Identity,
    Member,
    Organisation,
    Price,
    Tenant,
)
from billing_app.reports.worker import tenant_usages  # noqa: E402
from billing_app.reports.writer import (  # noqa: E402
    SUMMARY_COLUMNS,
    SUMMARY_SHEET,
    TENANT_COLUMNS,
    counted_days_text,
    internal_link,
    sheet_names,
    tenant_notes,
)

SLUG = "million-msp"
EMAIL = "admin@million-msp.example"
PASSWORD = "bench-" + SLUG
BIN = Path(sys.executable).parent
BATCH = 20_000


def build(url: str, tenants: int, per_tenant: int, month: Month) -> float:
    """The organisation written into the database at `url` with plain inserts."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    rng = random.Random(3)
    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        organisation = Organisation(slug=SLUG, name="Million MSP", billing_email="b@m.example")
        organisation.prices.append(
            Price(from_month=dt.date(2026, 1, 1), unit_price=3, currency="usd")
        )
        member = Member(email=EMAIL, name="Ada", role="admin")
        member.password_hash = generate_password_hash(PASSWORD)
        organisation.members.append(member)
        db.session.add(organisation)
        db.session.flush()
        org_id = organisation.id
        db.session.execute(
            insert(Tenant),
            [
                {
                    "id": t + 1,
                    "organisation_id": org_id,
                    "external_id": f"t-{t:04d}",
                    "name": f"Tenant {t:04d} {rng.choice(['Ltd', 'GmbH', 'Inc.', 'AG'])}",
                    "microsoft_tenant_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "onboarded_on": dt.date(2026, 1, 1),
                    "offboarded_on": None,
                }
                for t in range(tenants)
            ],
        )
        identities, periods = [], []
        days = month.days
        for t in range(tenants):
            for i in range(per_tenant):
                identity_id = t * per_tenant + i + 1
                identities.append(
                    {
                        "id": identity_id,
                        "organisation_id": org_id,
                        "tenant_id": t + 1,
                        "external_id": f"u-{identity_id:07d}",
                        "display_name": f"User {identity_id:07d}",
                        "user_principal_name": f"user{identity_id}@tenant{t}.example",
                    }
                )
                start = month.first_day + dt.timedelta(days=rng.randrange(days) if i % 5 else 0)
                periods.append({"identity_id": identity_id, "from_date": start, "until_date": None})
                if len(identities) >= BATCH:
                    db.session.execute(insert(Identity), identities)
                    db.session.execute(insert(BillablePeriod), periods)
                    identities, periods = [], []
        if identities:
            db.session.execute(insert(Identity), identities)
            db.session.execute(insert(BillablePeriod), periods)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # As the importer does after large imports: plan for the tables as they now are.
            db.session.execute(text("ANALYZE tenants, identities, billable_periods"))
            db.session.commit()
        db.engine.dispose()
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sign_in(base: str) -> requests.Session:
    session = requests.Session()
    token = CSRF_INPUT.search(session.get(f"{base}/login", timeout=30).text).group(1)
    response = session.post(
        f"{base}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 303, response.status_code
    return session


def fetch(session: requests.Session, url: str) -> tuple[float, list[float], list[str], bytes]:
    """The report at `url`, asked for again every second while it answers 202: seconds to
    the file, each request's seconds, the progress texts seen, and the file."""
    started = time.perf_counter()
    requests_s, progress = [], []
    while True:
        asked = time.perf_counter()
        response = session.get(url, timeout=60)
        requests_s.append(time.perf_counter() - asked)
        if response.status_code == 200:
            return time.perf_counter() - started, requests_s, progress, response.content
        if response.status_code != 202:
            raise SystemExit(f"report: HTTP {response.status_code}\n{response.text[:2000]}")
        text = response.text
        marker = text.find('id="report-progress-text">')
        if marker >= 0:
            progress.append(text[marker + 26 : text.find("<", marker + 26)])
        time.sleep(1.0)


def baseline(url: str, month: Month, target: str, tmpdir: str) -> tuple[float, int]:
    """Plain XlsxWriter writing the report's cells; only the writing is timed."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        today = month.end
        totals = month_summary(organisation, month, today)
        names = sheet_names(t.name for t in totals.tenants)
        label, counted = month.label, counted_days_text(totals)
        writing = 0.0
        rows = 0
        clock = time.perf_counter()
        workbook = xlsxwriter.Workbook(target, {"constant_memory": True, "tmpdir": tmpdir})
        summary = workbook.add_worksheet(SUMMARY_SHEET)
        for col, value in enumerate(("Usage report", organisation.name, label, counted)):
            summary.write_string(col, 0, value)
        summary.write_datetime(4, 1, dt.datetime(2026, 12, 1, 9, 0))
        summary.write_number(5, 1, float(totals.unit_price))
        for col, title in enumerate(SUMMARY_COLUMNS):
            summary.write_string(7, col, title)
        row = 7
        for tenant, name in zip(totals.tenants, names, strict=True):
            row += 1
            summary.write_string(row, 0, tenant.name)
            summary.write_number(row, 1, tenant.billable_users)
            summary.write_number(row, 2, float(tenant.units))
            summary.write_number(row, 3, float(tenant.cost))
            summary.write_string(row, 4, tenant_notes(tenant))
            summary.write_url(row, 5, internal_link(name), string="Open sheet")
        row += 1
        summary.write_formula(row, 3, f"=SUM(D9:D{row})", None, float(totals.cost))
        writing += time.perf_counter() - clock
        sheets = tenant_usages(organisation, month, today, totals)
        for name in names:
            tenant = next(sheets)  # reading the users: not timed
            clock = time.perf_counter()
            sheet = workbook.add_worksheet(name)
            sheet.write_string(0, 1, tenant.name)
            sheet.write_string(1, 1, tenant.microsoft_tenant_id)
            sheet.write_string(2, 1, label)
            sheet.write_string(3, 1, counted)
            sheet.write_url(5, 0, internal_link(SUMMARY_SHEET), string="Back to Summary")
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
            rows += len(tenant.lines)
            row += 1
            sheet.write_formula(row, 8, f"=SUM(I8:I{row})", None, float(tenant.cost))
            writing += time.perf_counter() - clock
        clock = time.perf_counter()
        workbook.close()
        writing += time.perf_counter() - clock
    return writing, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=1000)
    parser.add_argument("--database-url", help="a PostgreSQL URL (default: an SQLite file)")
    parser.add_argument("--queue-url", help="QUEUE_URL (default: an SQLite file)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="for rate limits")
    args = parser.parse_args()
    month = Month.of(today_utc()).previous()
    prefix = f"petra-bench-{uuid.uuid4().hex[:12]}"

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.database_url:
            _, url, _ = stack.enter_context(schema(args.database_url, None, False))
        else:
            url = f"sqlite:///{folder / 'million.sqlite3'}"
        seconds = build(url, args.tenants, args.identities_per_tenant, month)
        print(
            f"wrote {args.tenants:,} tenants x {args.identities_per_tenant:,} identities "
            f"in {seconds:.0f} s ({url.split(':')[0]})"
        )
        env = {
            **os.environ,
            "PETRA_ENV": "development",
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_hex(32),
            "RATELIMIT_STORAGE_URI": args.redis,
            "RATELIMIT_KEY_PREFIX": prefix,
            "QUEUE_URL": args.queue_url or f"sqlite:///{folder / 'queue.sqlite3'}",
            "QUEUE_NAME": prefix,
            "REPORT_DIR": str(folder / "reports"),
            "REPORT_TMPDIR": str(folder),
            "LOG_LEVEL": "INFO",
        }
        env.pop("CACHE_URL", None)
        worker_log = (folder / "worker.log").open("w")
        worker = subprocess.Popen(
            [BIN / "flask", "--app", "wsgi", "reports", "worker"],
            cwd=ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = stack.enter_context(gunicorn(env, folder))
            session = sign_in(base)
            report_url = f"{base}/settings/usage/report?month={month}"
            first, each, progress, body = fetch(session, report_url)
            rss = peak_rss_mb(worker.pid)
            again_started = time.perf_counter()
            repeat, _, _, body_again = fetch(session, report_url)
            repeat = time.perf_counter() - again_started
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            worker_log.close()
        built = [
            line for line in (folder / "worker.log").read_text().splitlines() if "built" in line
        ]
        base_s, rows = baseline(url, month, str(folder / "baseline.xlsx"), str(folder))

    print(
        f"{month.label}: {rows:,} user rows, {args.tenants + 1:,} sheets, {len(body) / 1e6:.1f} MB"
    )
    print(f"worker: {built[-1] if built else '(no build line)'}")
    print(
        f"first build, asked over HTTP until 200: {first:7.1f} s "
        f"({len(each)} requests; longest {max(each):.2f} s, median {statistics.median(each):.2f} s)"
    )
    print(f"progress seen: {', '.join(progress[:3])} … {', '.join(progress[-2:])}")
    print(f"worker peak RSS: {rss:.0f} MB (target < 400 MB)")
    same = hashlib.sha256(body).digest() == hashlib.sha256(body_again).digest()
    print(f"repeat download: {repeat * 1000:7.1f} ms (same bytes: {same})")
    print(f"baseline plain XlsxWriter, same cells: {base_s:7.1f} s (writing only)")
    print(f"ratio first build / baseline:  {first / base_s:6.2f}")
    print(f"ratio repeat / first download: {repeat / first:8.5f}")
    return 0 if same and rss < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
