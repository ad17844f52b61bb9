"""Kept reports: each built report is a file under `REPORT_DIR`, named by what its figures
depend on, so that the same request for unchanged data is a file send.

    REPORT_DIR/<organisation id>/<YYYY-MM>.r<month's revision>.xlsx               a closed month
    REPORT_DIR/<organisation id>/<YYYY-MM>.r<month's revision>.<YYYY-MM-DD>.xlsx  month to date

The month's revision (`figures.revisions`) grows with every import that changes the month's
figures, and only then, so a kept file is never stale for its name and a sync that did not
touch a month keeps its report; a file of an older revision, or of an earlier day of the
current month, is never asked for again and is removed. A file is written under a temporary
name and renamed into place once complete, so a reader never sees half a workbook.

    REPORT_DIR/.tmp/<build id>/    a build's temporary files (`scratch`)

Each build writes its temporary files (XlsxWriter's, which hold tenant and user names, and
the workbook until it is complete) into a folder of its own under `REPORT_DIR`, never the
system's temporary folder, and removes it when it ends; the build keeps the folder's
modification time fresh while it runs (its heartbeat), so a folder untouched for longer than
the lease is one a killed worker left, and `sweep_scratch` removes it. Nothing else is kept
in `REPORT_DIR`: `sweep` removes whatever does not belong there.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from billing_app.figures.months import Month

_KEPT = re.compile(r"(\d{4}-\d{2})\.r(\d+)(?:\.(\d{4}-\d{2}-\d{2}))?\.xlsx")
_PARTIAL_PREFIX = ".partial-"
SCRATCH = ".tmp"
"""The folder of `REPORT_DIR` that holds the builds' temporary folders."""
PARTIAL_MAX_AGE = 6 * 60 * 60
"""Seconds after which a file still being written is taken for one a stopped worker left."""


@dataclass(frozen=True, order=True, slots=True)
class ReportKey:
    """What a month's report depends on: the organisation, its usage revision, the month,
    and for the month to date the day it is counted on."""

    organisation_id: int
    revision: int
    month: str
    """The month, `YYYY-MM`."""
    day: str | None = None
    """`YYYY-MM-DD` for the current month (month to date); None for a closed month."""

    @classmethod
    def of(cls, organisation_id: int, revision: int, month: Month, today: dt.date) -> ReportKey:
        day = None if today >= month.end else today.isoformat()
        return cls(organisation_id, revision, str(month), day)

    @property
    def filename(self) -> str:
        day = f".{self.day}" if self.day else ""
        return f"{self.month}.r{self.revision}{day}.xlsx"

    @property
    def token(self) -> str:
        """The key as one string, for the queue's records."""
        return f"{self.organisation_id}:{self.revision}:{self.month}:{self.day or 'closed'}"

    @property
    def today(self) -> dt.date:
        """The day the report is counted on: its day, or for a closed month the day after."""
        if self.day:
            return dt.date.fromisoformat(self.day)
        return Month.parse(self.month).end


def _parse(name: str, organisation_id: int) -> ReportKey | None:
    match = _KEPT.fullmatch(name)
    if match is None:
        return None
    month, revision, day = match.groups()
    return ReportKey(organisation_id, int(revision), month, day)


class ReportStore:
    """The kept reports in one folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: ReportKey) -> Path:
        return self.root / str(key.organisation_id) / key.filename

    def open(self, key: ReportKey) -> BinaryIO | None:
        """The kept report of `key`, opened for reading; None when there is none."""
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            return None

    def has(self, key: ReportKey) -> bool:
        return self.path(key).is_file()

    def scratch(self, build: str) -> Path:
        """The folder of the temporary files of the build `build` (its claim's token)."""
        if not build.isalnum():
            raise ValueError(f"not a build id: {build!r}")
        return self.root / SCRATCH / build

    def sweep_scratch(self, max_age: float) -> list[Path]:
        """Remove the temporary folders of builds not touched for more than `max_age`
        seconds (their worker died), and anything else that is not a build's folder."""
        folder = self.root / SCRATCH
        if not folder.is_dir():
            return []
        removed = []
        now = time.time()
        for path in folder.iterdir():
            try:
                alive = path.is_dir() and now - path.stat().st_mtime <= max_age
            except FileNotFoundError:  # its build has just ended
                continue
            if not alive:
                _remove(path)
                removed.append(path)
        return removed

    def write(
        self, key: ReportKey, writer: Callable[[Path], None], scratch: Path | None = None
    ) -> Path:
        """Keep the report `writer(path)` writes (into `scratch` while it is being written,
        else beside the kept file), then remove the organisation's reports that can no
        longer be asked for (`remove_stale`)."""
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial_name = f"{_PARTIAL_PREFIX}{secrets.token_hex(6)}-{key.filename}"
        partial = scratch / partial_name if scratch is not None else final.with_name(partial_name)
        try:
            writer(partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        self.remove_stale(key)
        return final

    def discard(self, key: ReportKey) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_stale(self, key: ReportKey) -> list[Path]:
        """Remove the other reports of the same month: of older revisions (revisions are the
        month's own, so other months' reports stay), of an earlier day, or kept before the
        month closed."""
        removed = []
        folder = self.root / str(key.organisation_id)
        for path in folder.glob("*.xlsx"):
            other = _parse(path.name, key.organisation_id)
            if other is None or other == key:
                continue
            if other.month == key.month:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def kept(self, organisation_id: int) -> list[ReportKey]:
        """The reports kept for the organisation, of whatever revision."""
        folder = self.root / str(organisation_id)
        if not folder.is_dir():
            return []
        found = (_parse(path.name, organisation_id) for path in folder.iterdir())
        return sorted(key for key in found if key is not None)

    def sweep(
        self,
        organisations: Collection[int],
        revision_of: Callable[[int, str], int],
        today: dt.date,
    ) -> list[Path]:
        """Remove every file that no request can be answered with any more: reports of
        organisations not among `organisations` (their ids) or of another revision than
        the month's (`revision_of(organisation id, "YYYY-MM")`), month-to-date reports of
        another day than `today`, files being written for longer than `PARTIAL_MAX_AGE`, and
        anything else in the folder (but the builds' temporary folders, which `sweep_scratch`
        looks after)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for folder in self.root.iterdir():
            if folder.name == SCRATCH:
                continue  # the builds' temporary files: `sweep_scratch`
            organisation_id = int(folder.name) if folder.name.isdigit() else None
            if not folder.is_dir() or organisation_id not in organisations:
                removed.extend(_remove_tree(folder))
                continue
            for path in folder.iterdir():
                if path.is_file() and self._keep(path, organisation_id, revision_of, today, now):
                    continue
                removed.extend(_remove_tree(path))
        return removed

    @staticmethod
    def _keep(
        path: Path,
        organisation_id: int,
        revision_of: Callable[[int, str], int],
        today: dt.date,
        now: float,
    ) -> bool:
        if path.name.startswith(_PARTIAL_PREFIX):
            return now - path.stat().st_mtime <= PARTIAL_MAX_AGE
        key = _parse(path.name, organisation_id)
        if key is None or key.revision != revision_of(organisation_id, key.month):
            return False
        return key.day is None or key.day == today.isoformat()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> list[Path]:
    if path.is_dir() and not path.is_symlink():
        removed = []
        for child in path.iterdir():
            removed.extend(_remove_tree(child))
        path.rmdir()
        return [*removed, path]
    path.unlink(missing_ok=True)
    return [path]
