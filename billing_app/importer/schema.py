"""The import format as the importer reads it: the validated file's types, the limits and
patterns its fields must meet, and the refusal of a bad file."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from billing_app.permissions import Role

MAX_PROBLEMS = 20
CHUNK = 5000
ANALYZE_AFTER = 1000
"""Records created or updated from which an import refreshes PostgreSQL's statistics."""

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
TENANT_ID = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9._~:@-]+", re.ASCII)
"""A tenant id is one segment of the tenant page's address: letters, digits and - _ . ~ : @,
never "." or ".." alone (a browser would resolve them), no / \\ ? # %, spaces or controls."""
TENANT_ID_RULE = (
    'a tenant id (letters, digits and - _ . ~ : @ only; no "/", "\\", "?", "#", "%" or '
    'spaces; not "." or ".." alone)'
)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
CURRENCY = re.compile(r"[a-z]{3}", re.ASCII | re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNIT_PRICE_DECIMALS = 4
UNIT_PRICE_LIMIT = Decimal(10) ** 8
ROLES = tuple(role.value for role in Role)

DateRange = tuple[dt.date, dt.date | None]


class InvalidImportFile(ValueError):
    """The file was refused as a whole; `problems` names each offending entry."""

    def __init__(self, problems: Sequence[str], more: int = 0) -> None:
        self.problems = list(problems)
        self.more = more
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1 and not self.more:
            return self.problems[0]
        total = len(self.problems) + self.more
        lines = [f"{total} problems:", *(f"- {problem}" for problem in self.problems)]
        if self.more:
            lines.append(f"- and {self.more} more")
        return "\n".join(lines)


# The file, validated.


class _Keyed:
    """An entry of which no two in a file may share `key`: the value of its field `KEY`."""

    KEY: ClassVar[str]

    @property
    def key(self) -> object:
        return getattr(self, self.KEY)


@dataclass(frozen=True)
class PriceData(_Keyed):
    KEY = "from_month"

    from_month: dt.date
    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class OrganisationData:
    slug: str
    name: str
    billing_email: str
    stripe_customer_id: str | None
    portal_direct_access: bool | None
    prices: tuple[PriceData, ...]


@dataclass(frozen=True)
class MemberData:
    where: str
    email: str
    name: str
    role: str
    password: str | None

    @property
    def key(self) -> str:
        """No two members may share an email, ignoring case."""
        return self.email.lower()


@dataclass(frozen=True)
class IdentityData(_Keyed):
    external_id: str
    display_name: str
    user_principal_name: str
    billable_periods: tuple[DateRange, ...]

    KEY = "external_id"


@dataclass(frozen=True)
class TenantData(_Keyed):
    """A tenant as the file gives it, with its pauses and its identities."""

    KEY = "external_id"

    external_id: str
    name: str
    microsoft_tenant_id: str
    onboarded_on: dt.date
    offboarded_on: dt.date | None
    pauses: tuple[DateRange, ...]
    identities: tuple[IdentityData, ...]


@dataclass(frozen=True)
class ImportFile:
    organisation: OrganisationData
    members: tuple[MemberData, ...]
    tenants: tuple[TenantData, ...]


# Reading and checking the file.
