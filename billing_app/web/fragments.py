"""Rendered fragments kept in this process, so that a page asked for again with the same
figures is not rendered again: the Usage page's month summary and the tenant page's month.

A key must name everything the fragment depends on (organisation, its usage revision, month,
day, permissions, query); nothing is kept while templates auto-reload (as in debug mode).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from flask import current_app

from billing_app.figures.cache import Memo

T = TypeVar("T")

KEPT = 64
"""Fragments each process keeps, the least recently used dropped first."""


def kept(key: Hashable, render: Callable[[], T], *, keep: Callable[[T], bool] | None = None) -> T:
    """`render()`, kept under `key` in this app's memo; with `keep`, only a result it
    accepts is kept (e.g. not a page that shows a problem)."""
    if current_app.jinja_env.auto_reload:
        return render()
    memo = current_app.extensions.get("kept_fragments")
    if memo is None:
        memo = current_app.extensions.setdefault("kept_fragments", Memo(KEPT))
    value = memo.get(key)
    if value is None:
        value = render()
        if keep is None or keep(value):
            memo.put(key, value)
    return value
