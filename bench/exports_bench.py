"""Export benchmark: users.csv of an organisation of 1,000 tenants x 100 identities.

Builds the organisation into a fresh SQLite file (in a child process), then measures, each in
a process of its own so that peaks do not mix:

- the export: `GET /settings/usage/export/users.csv` through the app's test client, signed
  in, the streamed body read chunk by chunk and written to a file, as a server would send
  it: wall-clock and CPU seconds (median of the repeats), the process's peak RSS before and
  after, and the peak of Python allocations while streaming (tracemalloc, a separate run);
- the baseline: the same rows (collected beforehand, in memory) written to a file with
  `csv.writer` alone: the same timings, and the memory the rows take when a month is held
  whole, for comparison.

Prints the ratios export / baseline.

    python bench/exports_bench.py [--tenants 1000] [--identities-per-tenant 100] [--month 2026-10]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
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

from billing_app.exports import csv as exports
from billing_app.extensions import db
from billing_app.figures.months import Month, today_utc
from billing_app.models import Organisation


def stream_export(client, month: str, target: str) -> int:
    """The export read as it is streamed and written to `target`: its size in bytes."""
    response = client.get(
        "/settings/usage/export/users.csv", query_string={"month": month}, buffered=False
    )
    assert response.status_code == 200, response.status_code
    size = 0
    with open(target, "wb") as file:
        for piece in response.response:
            file.write(piece)
            size += len(piece)
    response.close()
    return size


def timed(function, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_export(url: str, month: str, repeat: int) -> dict[str, Any]:
    app = app_for(url)
    client = signed_in(app)
    result: dict[str, Any] = {"rss_start_mb": peak_rss_mb()}
    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "users.csv")
        times = [timed(stream_export, client, month, target)]
        result["rss_after_mb"] = peak_rss_mb()
        times += [timed(stream_export, client, month, target) for _ in range(repeat - 1)]
        result["bytes"] = os.path.getsize(target)
        with open(target, encoding="utf-8", newline="") as file:
            result["rows"] = sum(1 for _ in csv.reader(file)) - 1
        tracemalloc.start()
        stream_export(client, month, target)
        result["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    result["times"] = times
    return result


def measure_baseline(url: str, month: str, repeat: int) -> dict[str, Any]:
    app = app_for(url)
    result: dict[str, Any] = {"rss_start_mb": peak_rss_mb()}
    with app.app_context():
        organisation = db.session.scalar(select(Organisation).filter_by(slug=SLUG))
        tracemalloc.start()
        rows = list(exports.user_rows(organisation, Month.parse(month), today_utc()))
        result["rows_in_memory_mb"] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
    result["rss_rows_mb"] = peak_rss_mb()

    def write(target: str) -> None:
        with open(target, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(exports.USER_COLUMNS)
            writer.writerows(rows)

    with tempfile.TemporaryDirectory() as folder:
        target = os.path.join(folder, "baseline.csv")
        result["times"] = [timed(write, target) for _ in range(repeat)]
        result["bytes"] = os.path.getsize(target)
    result["rows"] = len(rows)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--export", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export:
        print(json.dumps(measure_export(args.export, args.month, args.repeat)))
        return
    if args.baseline:
        print(json.dumps(measure_baseline(args.baseline, args.month, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/exports-bench.sqlite3"
        build_in_child(url, args.tenants, args.identities_per_tenant)
        options = ("--month", args.month, "--repeat", str(args.repeat))
        export = child(__file__, "--export", url, *options)
        baseline = child(__file__, "--baseline", url, *options)
    assert export["bytes"] == baseline["bytes"], (export["bytes"], baseline["bytes"])
    wall = statistics.median(w for w, _ in export["times"])
    cpu = statistics.median(c for _, c in export["times"])
    base_wall = statistics.median(w for w, _ in baseline["times"])
    base_cpu = statistics.median(c for _, c in baseline["times"])
    print(
        f"users.csv of {args.month}: {export['rows']:,} rows, {export['bytes'] / 1e6:.1f} MB "
        f"(baseline file identical in size), median of {args.repeat}, {dt.date.today()}"
    )
    print(f"export (query, calculator, csv, streamed): {wall:6.2f} s wall, {cpu:6.2f} s CPU")
    print(
        f"baseline csv.writer of the same rows:      {base_wall:6.2f} s wall, {base_cpu:6.2f} s CPU"
    )
    print(
        f"ratio export / baseline:                   {wall / base_wall:6.2f} wall, "
        f"{cpu / base_cpu:6.2f} CPU"
    )
    print(
        f"export memory: peak RSS {export['rss_start_mb']:.0f} MB after start-up and sign-in, "
        f"{export['rss_after_mb']:.0f} MB after the first export "
        f"(+{export['rss_after_mb'] - export['rss_start_mb']:.0f} MB); "
        f"peak Python allocations while streaming {export['traced_peak_mb']:.1f} MB"
    )
    print(
        f"baseline memory: the rows held whole take {baseline['rows_in_memory_mb']:.0f} MB "
        f"(peak RSS {baseline['rss_rows_mb']:.0f} MB); "
        f"ratio of peaks export / rows held whole: "
        f"{export['traced_peak_mb'] / baseline['rows_in_memory_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
