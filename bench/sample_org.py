"""What the tenant-page and export benchmarks share: the sample organisation of 1,000
tenants x 100 identities imported into a fresh database, and a signed-in test client.

Building runs in a child process of its own (`python bench/sample_org.py DATABASE_URL`), so
that its memory does not count in the process that measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from billing_app import create_app
from billing_app.extensions import db
from billing_app.importer import import_file
from billing_app.models import BillablePeriod, Identity
from dev.sample_data import organisation_data

SLUG = "bench-msp"
TODAY = dt.date(2026, 11, 24)


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def app_for(url: str):
    """The app on `url`, with its own in-process cache and no CSRF (a benchmark client)."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "RATELIMIT_ENABLED": False,
            "CACHE_TYPE": "SimpleCache",
            "CACHE_THRESHOLD": 100_000,
        }
    )


def signed_in(app):
    """A test client signed in as the sample organisation's admin."""
    client = app.test_client()
    response = client.post(
        "/login", data={"email": f"admin@{SLUG}.example", "password": "demo-admin"}
    )
    assert response.status_code == 303, response.status_code
    return client


def build(url: str, tenants: int, identities_per_tenant: int, seed: int) -> dict[str, Any]:
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


def build_in_child(url: str, tenants: int, identities_per_tenant: int, seed: int = 1) -> None:
    command = [sys.executable, __file__, url, str(tenants), str(identities_per_tenant), str(seed)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    built = json.loads(output.strip().splitlines()[-1])
    print(
        f"built {tenants:,} tenants, {built['identities']:,} identities, "
        f"{built['periods']:,} billable periods in {built['seconds']:.1f} s (separate process)"
    )


def child(script: str, *arguments: str) -> dict[str, Any]:
    """Run a benchmark script in a child process and read the JSON it prints last."""
    command = [sys.executable, script, *arguments]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Build the sample organisation.")
    parser.add_argument("url")
    parser.add_argument("tenants", type=int)
    parser.add_argument("identities_per_tenant", type=int)
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    print(json.dumps(build(args.url, args.tenants, args.identities_per_tenant, args.seed)))
