"""Rendered fragments kept in this process, so that a page asked for again with the same
figures is not rendered again: the Usage page's month summary, the tenant page's month, and
each row of the tenant table (after a sync, the month is rendered again around the rows of the
tenants it did not change, which are kept).

A key must name everything the fragment depends on (organisation, its usage revision, month,
day, permissions, query, or the figures themselves); nothing is kept while templates
auto-reload (as in debug mode).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from flask import current_app

from billing_app.figures.cache import Memo

T = TypeVar("T")

KEPT = {"fragments": 64, "rows": 4_000}
"""Fragments each process keeps, by store, the least recently used dropped first: whole
sections, and table rows (a few hundred bytes each; 80 pages of 50)."""


def kept(
    key: Hashable,
    render: Callable[[], T],
    *,
    keep: Callable[[T], bool] | None = None,
    store: str = "fragments",
) -> T:
    """`render()`, kept under `key` in this app's memo of `store`; with `keep`, only a
    result it accepts is kept (e.g. not a page that shows a problem)."""
    if current_app.jinja_env.auto_reload:
        return render()
    memos = current_app.extensions.setdefault("kept_fragments", {})
    memo = memos.get(store)
    if memo is None:
        memo = memos.setdefault(store, Memo(KEPT[store]))
    value = memo.get(key)
    if value is None:
        value = render()
        if keep is None or keep(value):
            memo.put(key, value)
    return value
