"""Tenant page benchmark: one tenant's page against the Usage page, for an organisation of
1,000 tenants x 100 identities.

Builds the organisation into a fresh SQLite file (in a child process), then, in another
process, serves both pages through the app's test client, signed in: the Usage page with
its figures computed (cache emptied before each request) and as members usually get it
(figures and HTML kept), and the tenant page of tenants spread over the organisation, first
computed (from the calculator asked for that tenant alone) and then as kept by the process.
Prints the median milliseconds of each and the ratios tenant page / Usage page.

    python bench/tenant_page_bench.py [--tenants 1000] [--identities-per-tenant 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_org import SLUG, app_for, build_in_child, child, signed_in
from sqlalchemy import select

from billing_app.extensions import cache, db
from billing_app.figures import cache as figures_cache
from billing_app.models import Organisation, Tenant


def timed_get(client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    seconds = time.perf_counter() - started
    assert response.status_code == 200, (path, response.status_code)
    return seconds


def measure(url: str, month: str, repeat: int) -> dict[str, Any]:
    app = app_for(url)
    client = signed_in(app)
    with app.app_context():
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        ids = db.session.scalars(
            select(Tenant.external_id)
            .where(Tenant.organisation_id == organisation.id)
            .order_by(Tenant.id)
        ).all()
    sample = ids[:: max(1, len(ids) // repeat)][:repeat]
    usage_path = f"/settings/usage?month={month}"
    cold, warm, tenant, tenant_kept = [], [], [], []
    for external_id in sample:
        with app.app_context():
            cache.clear()
            figures_cache.clear_memo()
        app.extensions.pop("kept_fragments", None)
        cold.append(timed_get(client, usage_path))
        warm.append(timed_get(client, usage_path))
        tenant_path = f"/settings/usage/tenants/{external_id}?month={month}"
        tenant.append(timed_get(client, tenant_path))
        tenant_kept.append(timed_get(client, tenant_path))
    return {
        "cold": cold,
        "warm": warm,
        "tenant": tenant,
        "tenant_kept": tenant_kept,
        "tenants": len(ids),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--measure", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.month, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/tenant-page-bench.sqlite3"
        build_in_child(url, args.tenants, args.identities_per_tenant)
        figures = child(
            __file__, "--measure", url, "--month", args.month, "--repeat", str(args.repeat)
        )
    cold, warm, tenant, kept = (
        statistics.median(figures[k]) for k in ("cold", "warm", "tenant", "tenant_kept")
    )
    print(f"{figures['tenants']:,} tenants, {args.month}, median of {args.repeat} requests each")
    print(f"Usage page, figures computed:          {cold * 1000:8.1f} ms")
    print(f"Usage page, figures kept:              {warm * 1000:8.1f} ms")
    print(f"tenant page, first view (computed):    {tenant * 1000:8.1f} ms")
    print(f"tenant page, again (kept):             {kept * 1000:8.1f} ms")
    print(f"ratio tenant computed / Usage computed: {tenant / cold:7.2f}")
    print(f"ratio tenant computed / Usage kept:     {tenant / warm:7.2f}")
    print(f"ratio tenant kept / Usage kept:         {kept / warm:7.2f}")


if __name__ == "__main__":
    main()
