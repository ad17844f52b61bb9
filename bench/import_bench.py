"""Import benchmark: an organisation of 1,000 tenants x 100 identities.

Prints, per database, the seconds for the first import, for re-importing the same
file (which writes nothing) and, as a floor, for inserting the same rows with
SQLAlchemy Core `insert` executemany into an empty schema, and the ratio of the
first import to that floor. Runs on a fresh SQLite file, and on PostgreSQL too
(in a private schema, dropped afterwards) when TEST_DATABASE_URL is set.

    python bench/import_bench.py [--tenants 1000] [--identities-per-tenant 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import Engine, make_url
from werkzeug.security import generate_password_hash

from billing_app import create_app
from billing_app.extensions import db
from billing_app.importer import ImportSummary, import_file
from billing_app.models import (
    BillablePeriod,
    Identity,
    Member,
    Organisation,
    Price,
    Tenant,
    TenantPause,
)
from dev.sample_data import organisation_data


@contextmanager
def sqlite_databases() -> Iterator[tuple[str, str]]:
    """Two fresh SQLite files: one for the import, one for the baseline."""
    with tempfile.TemporaryDirectory() as folder:
        yield (f"sqlite:///{folder}/import.sqlite3", f"sqlite:///{folder}/baseline.sqlite3")


@contextmanager
def postgresql_databases(base_url: str) -> Iterator[tuple[str, str]]:
    """Two private schemas on the PostgreSQL server, dropped afterwards."""
    base = make_url(base_url)
    schemas = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = create_engine(base)
    with admin.begin() as connection:
        for schema in schemas:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield tuple(  # type: ignore[misc]
            base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False
            )
            for schema in schemas
        )
    finally:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed_import(data: dict[str, Any]) -> tuple[float, ImportSummary]:
    started = time.perf_counter()
    summary = import_file(data)
    return time.perf_counter() - started, summary


def baseline_rows(data: dict[str, Any]) -> dict[Any, list[dict[str, Any]]]:
    """The rows an import of `data` creates, with primary keys assigned up front."""
    organisation = data["organisation"]
    rows: dict[Any, list[dict[str, Any]]] = {
        Organisation: [
            {
                "id": 1,
                "slug": organisation["slug"],
                "name": organisation["name"],
                "billing_email": organisation["billing_email"],
                "stripe_customer_id": organisation["stripe_customer_id"],
                "portal_direct_access": organisation["portal_direct_access"],
            }
        ],
        Price: [
            {
                "organisation_id": 1,
                "from_month": dt.date.fromisoformat(price["from_month"] + "-01"),
                "unit_price": Decimal(price["unit_price"]),
                "currency": price["currency"],
            }
            for price in organisation["prices"]
        ],
        Member: [],
        Tenant: [],
        TenantPause: [],
        Identity: [],
        BillablePeriod: [],
    }
    password_hash = generate_password_hash("baseline")
    for member in data["members"]:
        rows[Member].append(
            {
                "organisation_id": 1,
                "email": member["email"],
                "name": member["name"],
                "role": member["role"],
                "password_hash": password_hash,
            }
        )
    day = dt.date.fromisoformat
    for tenant_id, tenant in enumerate(data["tenants"], start=1):
        rows[Tenant].append(
            {
                "id": tenant_id,
                "organisation_id": 1,
                "external_id": tenant["id"],
                "name": tenant["name"],
                "microsoft_tenant_id": tenant["microsoft_tenant_id"],
                "onboarded_on": day(tenant["onboarded_on"]),
                "offboarded_on": tenant["offboarded_on"] and day(tenant["offboarded_on"]),
            }
        )
        rows[TenantPause].extend(
            {
                "tenant_id": tenant_id,
                "from_date": day(pause["from"]),
                "until_date": pause["until"] and day(pause["until"]),
            }
            for pause in tenant["pauses"]
        )
        for identity in tenant["identities"]:
            identity_id = len(rows[Identity]) + 1
            rows[Identity].append(
                {
                    "id": identity_id,
                    "organisation_id": 1,
                    "tenant_id": tenant_id,
                    "external_id": identity["id"],
                    "display_name": identity["display_name"],
                    "user_principal_name": identity["user_principal_name"],
                }
            )
            rows[BillablePeriod].extend(
                {
                    "identity_id": identity_id,
                    "from_date": day(period["from"]),
                    "until_date": period["until"] and day(period["until"]),
                }
                for period in identity["billable_periods"]
            )
    return rows


def timed_baseline(engine: Engine, rows: dict[Any, list[dict[str, Any]]]) -> float:
    """Seconds to insert `rows` with Core executemany, in one transaction."""
    started = time.perf_counter()
    with engine.begin() as connection:
        for model, table_rows in rows.items():
            if table_rows:
                connection.execute(insert(model.__table__), table_rows)
    return time.perf_counter() - started


def run(name: str, urls: tuple[str, str], data: dict[str, Any]) -> None:
    import_url, baseline_url = urls
    app = create_app({"SQLALCHEMY_DATABASE_URI": import_url, "TESTING": True})
    with app.app_context():
        db.create_all()
        first, summary = timed_import(json.loads(json.dumps(data)))
        again, repeat = timed_import(json.loads(json.dumps(data)))
        identities = db.session.scalar(select(func.count()).select_from(Identity))
        periods = db.session.scalar(select(func.count()).select_from(BillablePeriod))
        db.session.remove()
        db.engine.dispose()
    assert not repeat.changed, repeat

    baseline_app = create_app({"SQLALCHEMY_DATABASE_URI": baseline_url, "TESTING": True})
    with baseline_app.app_context():
        db.create_all()
        rows = baseline_rows(data)
        floor = timed_baseline(db.engine, rows)
        db.engine.dispose()

    print(f"{name}: {summary}")
    print(f"{name}: {identities:,} identities and {periods:,} billable periods in the database")
    print(
        f"{name}: first import {first:.2f} s, re-import {again:.2f} s (nothing written), "
        f"Core executemany baseline {floor:.2f} s, first import / baseline {first / floor:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--identities-per-tenant", type=int, default=100)
    args = parser.parse_args()

    started = time.perf_counter()
    data = organisation_data(
        slug="bench-msp", tenants=args.tenants, identities_per_tenant=args.identities_per_tenant
    )
    print(
        f"sample data: {args.tenants:,} tenants x {args.identities_per_tenant:,} identities, "
        f"generated in {time.perf_counter() - started:.2f} s"
    )
    with sqlite_databases() as urls:
        run("sqlite", urls, data)
    if base_url := os.environ.get("TEST_DATABASE_URL"):
        with postgresql_databases(base_url) as urls:
            run("postgresql", urls, data)


if __name__ == "__main__":
    main()
