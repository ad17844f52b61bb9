"""Tenant table benchmark: searches, sorts and pages over a month of 1,000 tenants.

Builds the organisation into a fresh SQLite file (sample data through the importer) and
computes the month's totals and the month before's once, as the cache holds them. Then times
`tenant_table.build_table` over a mix of queries (searches by name and by Microsoft tenant id,
each sort, first, middle and last pages) against a baseline doing the least any table must
do, in the same process: a casefolded substring filter on the names, one sort and a slice.
Prints microseconds per query of both and their ratio (target <= 1.5), and the size of the
whole page's HTML for the first and the last page (target < 200 KB).

    python bench/tenant_table_bench.py [--tenants 1000] [--identities-per-tenant 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from billing_app import create_app
from billing_app.extensions import db
from billing_app.figures.calculator import month_totals
from billing_app.figures.months import Month, today_utc
from billing_app.importer import import_file
from billing_app.models import Organisation, Tenant
from billing_app.usage.tenant_table import PAGE_SIZE, Sort, TableQuery, build_table
from dev.sample_data import organisation_data

SLUG = "bench-table-msp"
ROUNDS = 200


def queries(ms_id: str, pages: int) -> list[TableQuery]:
    mixed = [TableQuery(sort=sort) for sort in Sort]
    mixed += [TableQuery(page=page) for page in (1, pages // 2 or 1, pages)]
    mixed += [TableQuery("contoso"), TableQuery("gmbh", Sort.COST_DESC), TableQuery(ms_id[:13])]
    return mixed


def baseline(tenants, query: TableQuery) -> list:
    needle = query.search.casefold()
    found = [t for t in tenants if needle in t.name.casefold()] if needle else list(tenants)
    found.sort(key=lambda t: t.cost, reverse=query.sort.descending)
    start = (query.page - 1) * PAGE_SIZE
    return found[start : start + PAGE_SIZE]


def timed(function, mixed: list[TableQuery]) -> float:
    """Microseconds per query, the best of three runs of ROUNDS rounds."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(ROUNDS):
            for query in mixed:
                function(query)
        best = min(best, time.perf_counter() - started)
    return best / (ROUNDS * len(mixed)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=5)
    args = parser.parse_args()
    today = today_utc()
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory}/bench.db",
                "TESTING": True,
                "WTF_CSRF_ENABLED": False,
            }
        )
        with app.app_context():
            db.create_all()
            data = organisation_data(
                slug=SLUG,
                tenants=args.tenants,
                identities_per_tenant=args.identities_per_tenant,
                today=today,
            )
            import_file(data)
            organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
            month = Month.of(today)
            totals = month_totals(organisation, month, today)
            previous = month_totals(organisation, month.previous(), today)
            statement = select(Tenant.id, Tenant.microsoft_tenant_id).where(
                Tenant.organisation_id == organisation.id
            )
            ms_ids = {row.id: row.microsoft_tenant_id for row in db.session.execute(statement)}
        pages = -(-len(totals.tenants) // PAGE_SIZE)
        mixed = queries(next(iter(ms_ids.values())), pages)
        table_us = timed(lambda q: build_table(totals, previous, ms_ids, q), mixed)
        base_us = timed(lambda q: baseline(totals.tenants, q), mixed)
        print(f"tenants this month: {len(totals.tenants):,} ({pages} pages)")
        print(f"build_table: {table_us:8.1f} µs a query")
        print(f"baseline:    {base_us:8.1f} µs a query")
        print(f"ratio:       {table_us / base_us:8.2f}  (target <= 1.5)")

        client = app.test_client()
        client.post(
            "/login",
            data={"email": f"admin@{SLUG}.example", "password": "demo-admin"},
        )
        for label, query in (("first page", ""), ("last page", f"&page={pages}")):
            response = client.get(f"/settings/usage?month={month}{query}")
            size = len(response.get_data())
            print(f"page HTML, {label}: {size / 1000:6.1f} KB (status {response.status_code})")


if __name__ == "__main__":
    main()
