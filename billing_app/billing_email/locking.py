"""One change of an organisation's billing email at a time, a save or a Stripe event: on
PostgreSQL by the row lock on the organisation, on SQLite (which has no row locks) by a file
lock per organisation beside the database file, which holds across threads and worker
processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import select

from billing_app.extensions import db
from billing_app.models import Organisation

LOCK_WAIT = 45.0
"""Seconds a save or an event waits for another change of the same organisation to finish
(longer than a Stripe request with its retries takes)."""


BUSY = (
    "Another change of the billing email is being saved right now, so this one was not made. "
    "Wait a moment, then save again."
)


class OrganisationBusy(RuntimeError):
    """Another change of the organisation's billing email did not finish within LOCK_WAIT."""


@contextlib.contextmanager
def organisation_lock(organisation_id: int) -> Iterator[None]:
    """Hold the organisation's billing email for one change, across threads and processes.

    PostgreSQL needs nothing more than the row lock `locked_organisation` takes. SQLite has
    no row locks (and locking the whole database for a Stripe request would stop every other
    write), so a file lock per organisation, beside the database file, stands in for it.
    """
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    database = Path(url.database).resolve()
    lock = FileLock(
        database.with_name(f"{database.name}.organisation-{organisation_id}.lock"),
        timeout=LOCK_WAIT,
    )
    try:
        lock.acquire()
    except Timeout:
        raise OrganisationBusy(organisation_id) from None
    try:
        yield
    finally:
        lock.release()


def locked_organisation(organisation_id: int) -> Organisation:
    """The organisation, freshly read and locked for this transaction where the database can."""
    statement = (
        select(Organisation)
        .where(Organisation.id == organisation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.execute(statement).scalar_one()
