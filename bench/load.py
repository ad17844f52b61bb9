"""Load check: gunicorn and PostgreSQL on 127.0.0.1 serving an organisation of 1,000 tenants
x 100 identities to many members at once.

Builds the organisation (sample data through the importer, plus one member per simulated
person) in a private schema of the PostgreSQL database, starts gunicorn with the production
settings module, signs every simulated member in, then for `--seconds`:

- `--members` members (default 50) each load the Usage page for a month and switch months the
  way htmx does (GET /settings/usage?month=YYYY-MM, then GET /settings/usage/summary?month=...
  with `HX-Request: true`), with no pause between requests;
  each member also fetches a static file (GET /static/css/app.css) from the same server
  after each switch, the baseline the page is compared with;
- `--downloaders` members (default 5) download the itemized report of a month
  (GET /settings/usage/report?month=YYYY-MM, asked again every second while it answers 202,
  as the progress page does), then download it once more at once, one month after another.
  The reports are built by one report worker (`flask reports worker`) on a Redis queue.

Then stops by itself and prints: the number of requests and whether every one succeeded (the
zero-error check; the exit status is 1 otherwise), p50/p95/max latency and HTML size of the
page and summary requests and of the static file, the ratio page p95 / static p95, the
report download times (first downloads that waited for a build, first downloads of a kept
report, repeat downloads; the ratio repeat / first) and the longest single report request.
The schema is dropped afterwards unless `--keep` is given; `--schema NAME` reuses a kept one
(skipping the import).

    python bench/load.py [--seconds 120] [--members 50] [--downloaders 5]
                         [--tenants 1000] [--identities-per-tenant 100]
                         [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                         [--parts pages,summary,reports] [--workers N] [--threads N]
                         [--redis URL] [--cache-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from billing_app import create_app  # noqa: E402
from billing_app.extensions import db  # noqa: E402
from billing_app.figures.months import available_months, today_utc  # noqa: E402
from billing_app.importer import import_file  # noqa: E402
from dev.sample_data import organisation_data  # noqa: E402

BIN = Path(sys.executable).parent
SLUG = "load-msp"
# The same on every run, so that a kept schema (`--keep`, `--schema`) can be signed in to again.
PASSWORD = "load-test-" + SLUG
ROLES = ("admin", "full_member", "billing")
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CSRF_INPUT = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
PARTS = ("pages", "summary", "reports")


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sizes: list[int] = field(default_factory=list)
    html_sizes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, size: int | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if size is not None and kind.startswith("report"):
                self.sizes.append(size)
            elif size is not None:
                self.html_sizes[kind].append(size)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


@contextmanager
def schema(base_url: str, name: str | None, keep: bool):
    """A private schema on the PostgreSQL server (a new one, or `name` when given)."""
    base = make_url(base_url)
    admin = create_engine(base)
    created = name is None
    name = name or f"load_{uuid.uuid4().hex[:12]}"
    if created:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = base.update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield name, url.render_as_string(hide_password=False), created
    finally:
        if created and not keep:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@contextmanager
def report_worker(env: dict, log_dir: Path):
    """The report worker beside gunicorn, on the same settings."""
    with (log_dir / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [BIN / "flask", "--app", "wsgi", "reports", "worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis_keys_removed(url: str, prefix: str):
    """Remove this run's rate-limit counters, cache entries and queue from Redis afterwards."""
    try:
        yield
    finally:
        store = redis.Redis.from_url(url)
        # Huey names the report queue's keys after QUEUE_NAME without its hyphens.
        keys = [
            key
            for pattern in {prefix, prefix.replace("-", "")}
            for key in store.scan_iter(match=f"*{pattern}*", count=1000)
        ]
        if keys:
            store.delete(*keys)
        store.close()


def emails(count: int) -> list[str]:
    return [f"load-{index:03d}@{SLUG}.example" for index in range(count)]


def build(database_url: str, env: dict, tenants: int, identities: int, people: int) -> None:
    """Migrate the schema and import the organisation with one member per simulated person."""
    subprocess.run([BIN / "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True)
    data = organisation_data(slug=SLUG, tenants=tenants, identities_per_tenant=identities, seed=6)
    data["members"] += [
        {"email": email, "name": f"Load {index}", "role": ROLES[index % 3], "password": PASSWORD}
        for index, email in enumerate(emails(people))
    ]
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    started = time.perf_counter()
    with app.app_context():
        print(import_file(data))
        db.engine.dispose()
    print(f"imported in {time.perf_counter() - started:.1f} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(env: dict, log_dir: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (log_dir / "access.log").open("w") as out, (log_dir / "error.log").open("w") as err:
        process = subprocess.Popen(
            [BIN / "gunicorn", "-c", "python:billing_app.gunicorn_conf", "wsgi:app"],
            cwd=ROOT,
            env=env | {"BIND": f"127.0.0.1:{port}"},
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start:\n" + (log_dir / "error.log").read_text())
            try:
                if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sign_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30)
    token = CSRF_INPUT.search(page.text).group(1)
    response = session.post(
        f"{base}/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 303:
        raise SystemExit(
            f"{email} could not sign in (HTTP {response.status_code}); a kept schema has only "
            "the members of the run that built it"
        )
    return session


def timed_get(session, results: Results, kind: str, url: str, **kwargs) -> None:
    started = time.perf_counter()
    try:
        response = session.get(url, timeout=300, **kwargs)
        size = len(response.content)
    except requests.RequestException as error:
        results.error(f"{kind} {url}: {error!r}")
        return
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        results.error(f"{kind} {url}: HTTP {response.status_code}")
        return
    results.record(kind, elapsed, size)


def browse(base, session, months, parts, stop, results, rng) -> None:
    """A member switching months on the Usage page, as fast as the server answers."""
    while not stop.is_set():
        month = rng.choice(months)
        if "pages" in parts:
            timed_get(session, results, "page", f"{base}/settings/usage?month={month}")
        if "summary" in parts and not stop.is_set():
            timed_get(
                session,
                results,
                "summary",
                f"{base}/settings/usage/summary?month={month}",
                headers={"HX-Request": "true"},
            )
        if not stop.is_set():
            timed_get(session, results, "static", f"{base}/static/css/app.css")


def fetch_report(session, results: Results, url: str) -> tuple[float, bool] | None:
    """The report at `url`, asked for again every second while it answers 202: seconds to
    the file and whether it had to wait for a build (None on an error)."""
    started = time.perf_counter()
    waited = False
    while True:
        asked = time.perf_counter()
        try:
            response = session.get(url, timeout=300)
            size = len(response.content)
        except requests.RequestException as error:
            results.error(f"report {url}: {error!r}")
            return None
        results.record("report-request", time.perf_counter() - asked)
        if response.status_code == 200:
            with results.lock:
                results.sizes.append(size)
            return time.perf_counter() - started, waited
        if response.status_code != 202:
            results.error(f"report {url}: HTTP {response.status_code}")
            return None
        waited = True
        time.sleep(1.0)


def download(base, session, months, stop, results, rng) -> None:
    """A member downloading a month's report, then the same report again."""
    while not stop.is_set():
        url = f"{base}/settings/usage/report?month={rng.choice(months)}"
        first = fetch_report(session, results, url)
        if first is None:
            continue
        seconds, waited = first
        results.record("report-built" if waited else "report-kept", seconds)
        again = fetch_report(session, results, url)
        if again is not None:
            results.record("report-repeat", again[0])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: Results, seconds: float) -> bool:
    total = sum(len(values) for values in results.latencies.values()) + len(results.errors)
    print(f"\nrequests: {total} in {seconds:.1f} s ({total / seconds:.1f} per second)")
    ok = not results.errors
    print(f"zero-error check: {'OK' if ok else 'FAILED'} ({len(results.errors)} errors)")
    for message in results.errors[:10]:
        print(f"  {message}")
    for kind in ("page", "summary", "static"):
        values = results.latencies.get(kind)
        if values:
            sizes = results.html_sizes.get(kind) or [0]
            print(
                f"{kind:8} n={len(values):6}  p50={percentile(values, 0.5) * 1000:7.1f} ms  "
                f"p95={percentile(values, 0.95) * 1000:7.1f} ms  "
                f"max={max(values) * 1000:7.1f} ms  size max={max(sizes) / 1000:.0f} KB"
            )
    pages, static = results.latencies.get("page"), results.latencies.get("static")
    if pages and static:
        ratio = percentile(pages, 0.95) / percentile(static, 0.95)
        print(f"ratio page p95 / static p95: {ratio:.2f} (target <= 5)")
    for kind, label in (
        ("report-built", "first download, waited for a build"),
        ("report-kept", "first download of a kept report"),
        ("report-repeat", "repeat download"),
        ("report-request", "single report request"),
    ):
        values = results.latencies.get(kind)
        if values:
            print(
                f"{kind:14} n={len(values):5}  p50={statistics.median(values):7.2f} s   "
                f"max={max(values):7.2f} s   ({label})"
            )
    built, repeat = results.latencies.get("report-built"), results.latencies.get("report-repeat")
    if built and repeat:
        ratio = statistics.median(repeat) / statistics.median(built)
        print(f"ratio repeat / first download (medians): {ratio:.4f}")
    if results.sizes:
        print(f"report size p50={statistics.median(results.sizes) / 1e6:.1f} MB")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument(
        "--grace", type=float, default=60, help="seconds to wait for requests still running"
    )
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--downloaders", type=int, default=5)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    parser.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE)
    )
    parser.add_argument("--schema", help="reuse this kept schema instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--parts", default=",".join(PARTS), help="pages,summary,reports")
    parser.add_argument("--workers", type=int, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--cache-url",
        help="CACHE_URL of the app (default: the --redis server; '' for a cache in each worker)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts takes some of {', '.join(PARTS)}")
    if not make_url(args.database_url).drivername.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL")
    people = args.members + args.downloaders

    prefix = f"petra-load-{uuid.uuid4().hex}"
    with (
        schema(args.database_url, args.schema, args.keep) as (name, database_url, created),
        redis_keys_removed(args.redis, prefix),
    ):
        env = {
            **os.environ,
            "PETRA_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_hex(32),
            "RATELIMIT_STORAGE_URI": args.redis,
            "RATELIMIT_KEY_PREFIX": prefix,
            # This run's own prefix: another run's schema has organisations with the same ids.
            "CACHE_URL": args.redis if args.cache_url is None else args.cache_url,
            "CACHE_KEY_PREFIX": f"{prefix}:cache:",
            "QUEUE_URL": args.redis,
            "QUEUE_NAME": prefix,
            "LOG_LEVEL": "WARNING",
        }
        if args.workers:
            env["WEB_CONCURRENCY"] = str(args.workers)
        if args.threads:
            env["GUNICORN_THREADS"] = str(args.threads)
        print(f"schema {name}{' (kept)' if args.keep else ''}")
        if created:
            build(database_url, env, args.tenants, args.identities_per_tenant, people)
        months = [str(month) for month in available_months(today_utc())]
        log_dir = tempfile.TemporaryDirectory()
        env |= {"REPORT_DIR": f"{log_dir.name}/reports", "REPORT_TMPDIR": log_dir.name}
        with (
            log_dir,
            gunicorn(env, Path(log_dir.name)) as base,
            report_worker(env, Path(log_dir.name)),
        ):
            accounts = emails(people)
            sessions = [sign_in(base, email) for email in accounts]
            print(f"{len(sessions)} members signed in; running for {args.seconds:.0f} s")
            results = Results()
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=browse,
                    daemon=True,
                    args=(base, sessions[i], months, parts, stop, results, random.Random(i)),
                )
                for i in range(args.members)
            ]
            if "reports" in parts:
                threads += [
                    threading.Thread(
                        target=download,
                        daemon=True,
                        args=(
                            base,
                            sessions[args.members + i],
                            months,
                            stop,
                            results,
                            random.Random(1000 + i),
                        ),
                    )
                    for i in range(args.downloaders)
                ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            stop.wait(args.seconds)
            stop.set()
            grace_ends = time.monotonic() + args.grace
            for thread in threads:
                thread.join(timeout=max(0.0, grace_ends - time.monotonic()))
            elapsed = time.perf_counter() - started
            unfinished = sum(thread.is_alive() for thread in threads)
            if unfinished:
                results.error(
                    f"{unfinished} requests still unanswered {args.grace:.0f} s after the end"
                )
            print(
                f"gunicorn workers={env.get('WEB_CONCURRENCY', 'default')} "
                f"threads={env.get('GUNICORN_THREADS', 'default')} "
                f"cache={'redis' if env['CACHE_URL'] else 'in each worker'}"
            )
            return 0 if report(results, elapsed) else 1


if __name__ == "__main__":
    sys.exit(main())
