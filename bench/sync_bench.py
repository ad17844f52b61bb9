"""Sync benchmark: what a one-tenant sync costs the people using the page, at 1,000 tenants x
100 identities (issue 19).

Builds the sample organisation (in a child process) into a fresh SQLite file, or into a
fresh schema of the PostgreSQL database given with `--postgres`, then, in another process,
from a warm start (every page below viewed, and March's report kept):

- a number of times (`--rounds`, as syncs land all day), imports a one-tenant file adding one
  user billable from today to another tenant each time (a sync), then views, each for the first
  time after it, the current month's Usage page, an untouched month's page (March), the tenant
  table (sorted by cost, page 2), an untouched tenant's page and March's report, then views each
  again (warm);
- imports the whole 1,000-tenant file with one user changed.

Prints, per page, the median first view after a sync as a ratio to the median warm view (goal:
within 3x), and the median one-tenant import against the whole file's (goal: within a tenth).

    python bench/sync_bench.py [--tenants 1000] [--identities-per-tenant 100] [--rounds 7]
    python bench/sync_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_org import SLUG, TODAY, app_for, build_in_child, child, signed_in
from sqlalchemy import create_engine, select, text

from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.importer import import_file
from billing_app.models import Organisation, Tenant
from billing_app.reports.queue import jobs, record_of
from billing_app.reports.requests import request_report
from billing_app.reports.worker import build_report
from dev.sample_data import organisation_data

SCHEMA = "sync_bench"
UNTOUCHED = "2026-03"


def timed_get(client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    response.get_data()
    seconds = time.perf_counter() - started
    assert response.status_code == 200, (path, response.status_code)
    return seconds


def one_user_more(data: dict, tenant_index: int, identity: str) -> dict:
    """`data` with one more user in one tenant, billable from today."""
    changed = copy.deepcopy(data)
    changed["tenants"][tenant_index]["identities"].append(
        {
            "id": identity,
            "display_name": "Synced User",
            "user_principal_name": f"{identity}@bench.example",
            "billable_periods": [{"from": today_utc().isoformat(), "until": None}],
        }
    )
    return changed


def measure(
    url: str, tenants: int, identities_per_tenant: int, folder: str, rounds: int
) -> dict[str, Any]:
    app = app_for(url)
    app.config.update(QUEUE_URL=f"sqlite:///{folder}/queue.sqlite3", REPORT_DIR=f"{folder}/reports")
    client = signed_in(app)
    current = str(Month.of(today_utc()))
    with app.app_context():
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        ids = db.session.scalars(
            select(Tenant.external_id).where(Tenant.organisation_id == organisation.id)
        ).all()
        # March's report, kept (built here, as the worker would).
        status = request_report(organisation, Month.parse(UNTOUCHED), today_utc(), wait=0)
        build_report(status.key, record_of(jobs().queue, status.key)["token"])
    untouched_tenant = sorted(ids)[len(ids) // 2]
    pages = {
        "current month's Usage page": f"/settings/usage?month={current}",
        "untouched month's page (March)": f"/settings/usage?month={UNTOUCHED}",
        "tenant table (by cost, page 2)": (
            f"/settings/usage/summary?month={current}&sort=-cost&page=2"
        ),
        "untouched tenant's page": f"/settings/usage/tenants/{untouched_tenant}?month={current}",
        "untouched month's report (March)": f"/settings/usage/report?month={UNTOUCHED}",
    }
    for path in pages.values():  # warm start
        timed_get(client, path)

    data = organisation_data(
        slug=SLUG, tenants=tenants, identities_per_tenant=identities_per_tenant, seed=1, today=TODAY
    )
    warm: dict[str, list[float]] = {name: [] for name in pages}
    first: dict[str, list[float]] = {name: [] for name in pages}
    one_imports = []
    for sync in range(rounds):
        # Each sync adds a user, from today, to another tenant (never the untouched one).
        data = one_user_more(data, sync, f"u-sync-{sync}")
        one = copy.deepcopy(data)
        one["tenants"] = [one["tenants"][sync]]
        one["members"] = []
        with app.app_context():
            started = time.perf_counter()
            import_file(one)
            one_imports.append(time.perf_counter() - started)
        for name, path in pages.items():
            first[name].append(timed_get(client, path))
        for name, path in pages.items():
            warm[name].append(statistics.median(timed_get(client, path) for _ in range(3)))

    whole = one_user_more(data, len(ids) // 3, "u-sync-whole")
    with app.app_context():
        started = time.perf_counter()
        import_file(whole)
        whole_import = time.perf_counter() - started
    return {
        "warm": warm,
        "first": first,
        "one_import": statistics.median(one_imports),
        "whole_import": whole_import,
    }


def fresh_postgres_schema(url: str) -> str:
    """A fresh schema `sync_bench` on the database of `url`; the URL that uses it."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{SCHEMA}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument("--postgres", metavar="DATABASE_URL")
    parser.add_argument("--rounds", type=int, default=7, help="syncs, each measured")
    parser.add_argument(
        "--measure", nargs=2, metavar=("DATABASE_URL", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.measure:
        url, folder = args.measure
        figures = measure(url, args.tenants, args.identities_per_tenant, folder, args.rounds)
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory() as folder:
        if args.postgres:
            url, database = fresh_postgres_schema(args.postgres), "PostgreSQL"
        else:
            url, database = f"sqlite:///{folder}/sync-bench.sqlite3", "SQLite"
        build_in_child(url, args.tenants, args.identities_per_tenant)
        figures = child(
            __file__,
            "--measure",
            url,
            folder,
            "--tenants",
            str(args.tenants),
            "--identities-per-tenant",
            str(args.identities_per_tenant),
            "--rounds",
            str(args.rounds),
        )
        if args.postgres:
            fresh_postgres_schema(args.postgres)
    print(
        f"{database}, {args.tenants:,} tenants x {args.identities_per_tenant} identities, "
        f"{args.rounds} one-tenant syncs (medians; first views' range in brackets)"
    )
    print(f"{'after a one-tenant sync':34} {'warm':>8} {'first view':>10} {'':17} {'ratio':>6}")
    for name, warms in figures["warm"].items():
        firsts = figures["first"][name]
        warm, first = statistics.median(warms), statistics.median(firsts)
        spread = f"[{min(firsts) * 1000:.1f} to {max(firsts) * 1000:.1f}]"
        ratio = first / warm
        print(f"{name:34} {warm * 1000:6.1f}ms {first * 1000:8.1f}ms {spread:>17} {ratio:5.2f}x")
    one, whole = figures["one_import"], figures["whole_import"]
    print(f"one-tenant import {one:.2f} s, whole file {whole:.2f} s: ratio {one / whole:.3f}")


if __name__ == "__main__":
    main()
