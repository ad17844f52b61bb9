"""Usage API benchmark: an organisation of 1,000 tenants x 100 identities, read through the API
against the CSV exports of the same month, in the same process.

Builds the organisation into a fresh SQLite file (in a child process), then, in another
process, through the app's test client:

- every tenant of the month through `GET /api/v1/months/M/tenants` (all pages, `limit=1000`)
  against `GET /settings/usage/export/tenants.csv?month=M`;
- every user of the month through `GET /api/v1/months/M/users` (all pages, `limit=1000`)
  against `GET /settings/usage/export/users.csv?month=M`, streamed;
- an `If-None-Match` request answered 304 against a static file (`/static/css/app.css`);
- the peak of Python allocations (tracemalloc) while paging the whole month, against one page:
  flat when the two are alike.

Timings are medians of the repeats after a first (cold) run, which is shown too. Prints the
ratios API / CSV and 304 / static file.

    python bench/api_bench.py [--tenants 1000] [--identities-per-tenant 100] [--month 2026-10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_org import SLUG, app_for, build_in_child, child, peak_rss_mb, signed_in
from sqlalchemy import select

from billing_app.api_tokens import service as tokens
from billing_app.extensions import db
from billing_app.models import Member


def token_for(app) -> str:
    with app.app_context():
        admin = db.session.scalar(select(Member).filter_by(email=f"admin@{SLUG}.example"))
        secret = tokens.create(admin.organisation_id, admin, "bench", [tokens.USAGE_READ], None)
        db.session.remove()
    return secret.secret


def all_pages(client, token: str, path: str) -> int:
    """Every page of an API list: the number of rows."""
    headers = {"Authorization": f"Bearer {token}"}
    rows, url = 0, path
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        body = json.loads(response.get_data())
        rows += len(body["data"])
        url = body["next"]
    return rows


def csv_rows(client, kind: str, month: str) -> int:
    response = client.get(
        f"/settings/usage/export/{kind}.csv", query_string={"month": month}, buffered=False
    )
    assert response.status_code == 200, response.status_code
    lines = sum(piece.count(b"\n") for piece in response.response)
    response.close()
    return lines - 1


def timed(function, *args) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


def repeated(repeat: int, function, *args) -> dict[str, Any]:
    cold, value = timed(function, *args)
    warm = [timed(function, *args)[0] for _ in range(repeat)]
    return {"cold": cold, "median": statistics.median(warm), "value": value}


def measure(url: str, month: str, repeat: int, conditional: int) -> dict[str, Any]:
    app = app_for(url)
    client = signed_in(app)
    token = token_for(app)
    api = app.test_client()
    result: dict[str, Any] = {"rss_start_mb": peak_rss_mb()}
    tenants_path = f"/api/v1/months/{month}/tenants?limit=1000"
    users_path = f"/api/v1/months/{month}/users?limit=1000"
    result["api_tenants"] = repeated(repeat, all_pages, api, token, tenants_path)
    result["csv_tenants"] = repeated(repeat, csv_rows, client, "tenants", month)
    result["api_users"] = repeated(repeat, all_pages, api, token, users_path)
    result["csv_users"] = repeated(repeat, csv_rows, client, "users", month)
    result["rss_after_mb"] = peak_rss_mb()

    headers = {"Authorization": f"Bearer {token}"}
    etag = api.get(tenants_path, headers=headers).headers["ETag"]
    conditional_headers = headers | {"If-None-Match": etag}

    def not_modified() -> None:
        for _ in range(conditional):
            response = api.get(tenants_path, headers=conditional_headers)
            assert response.status_code == 304, response.status_code

    def static_file() -> None:
        for _ in range(conditional):
            response = api.get("/static/css/app.css")
            assert response.status_code == 200
            response.close()

    result["not_modified"] = repeated(repeat, not_modified)
    result["static"] = repeated(repeat, static_file)

    tracemalloc.start()
    all_pages(api, token, users_path)
    result["traced_month_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    tracemalloc.start()
    response = api.get(users_path, headers=headers)
    assert response.status_code == 200
    result["traced_page_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--conditional", type=int, default=200, help="304s per timing")
    parser.add_argument("--measure", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.month, args.repeat, args.conditional)))
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/api-bench.sqlite3"
        build_in_child(url, args.tenants, args.identities_per_tenant)
        options = ("--month", args.month, "--repeat", str(args.repeat))
        found = child(__file__, "--measure", url, *options, "--conditional", str(args.conditional))
    api_t, csv_t = found["api_tenants"], found["csv_tenants"]
    api_u, csv_u = found["api_users"], found["csv_users"]
    assert api_t["value"] == csv_t["value"], (api_t["value"], csv_t["value"])
    assert api_u["value"] == csv_u["value"], (api_u["value"], csv_u["value"])
    each_304 = found["not_modified"]["median"] / args.conditional * 1e3
    each_static = found["static"]["median"] / args.conditional * 1e3
    print(
        f"month {args.month}: {api_t['value']:,} tenants, {api_u['value']:,} users; "
        f"median of {args.repeat} after a cold run; {dt.date.today()}"
    )
    for name, api, csv_ in (("tenants", api_t, csv_t), ("users", api_u, csv_u)):
        print(
            f"{name:8} API all pages {api['median']:6.2f} s (cold {api['cold']:5.2f} s) | "
            f"{name}.csv {csv_['median']:6.2f} s (cold {csv_['cold']:5.2f} s) | "
            f"ratio API / CSV {api['median'] / csv_['median']:5.2f}"
        )
    print(
        f"304 with If-None-Match {each_304:6.3f} ms each | static file {each_static:6.3f} ms "
        f"each | ratio {each_304 / each_static:5.2f}"
    )
    print(
        f"memory: peak Python allocations paging the whole month {found['traced_month_mb']:.1f} "
        f"MB, one page {found['traced_page_mb']:.1f} MB (ratio "
        f"{found['traced_month_mb'] / found['traced_page_mb']:.2f}); peak RSS "
        f"{found['rss_start_mb']:.0f} MB after start-up, {found['rss_after_mb']:.0f} MB after"
    )


if __name__ == "__main__":
    main()
